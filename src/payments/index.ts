/**
 * Payments: paying hosts per request without a transaction per request. Escrows live on chain;
 * cumulative vouchers signed by the payer travel with requests and are redeemed in batches.
 */
export type { EscrowView, Voucher, VoucherBody, VoucherErrorCode } from './voucher.ts'
export { MAX_VOUCHER_BYTES, signVoucher, VoucherBook, VoucherError, VoucherWallet, verifyVoucher } from './voucher.ts'
