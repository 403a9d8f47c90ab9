/**
 * Payments: paying hosts per request without a transaction per request. Escrows live on chain;
 * cumulative vouchers signed by the payer travel with requests and are redeemed in batches.
 */
export type { Voucher, VoucherBody, VoucherErrorCode } from '../chain/voucher.ts'
export { MAX_VOUCHER_BYTES, signVoucher, VoucherError, verifyVoucher } from '../chain/voucher.ts'
export type { JobPayment } from './edge-payments.ts'
export { EdgePayments } from './edge-payments.ts'
export type { Admission, HostBooks, HostBooksFile, PaymentErrorCode, PaymentsChain } from './host-payments.ts'
export { escrowView, HostPayments, hostBooksCodec, maxJobCost, PaymentError } from './host-payments.ts'
export type { EscrowView } from './voucher.ts'
export { VoucherBook, VoucherWallet } from './voucher.ts'
