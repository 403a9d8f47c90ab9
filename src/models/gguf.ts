/** The first four bytes of every GGUF file ("GGUF" in ASCII). */
export const GGUF_FILE_MAGIC = Uint8Array.of(0x47, 0x47, 0x55, 0x46)

/** True when `head` starts with the GGUF magic. */
export function hasGgufMagic(head: Uint8Array): boolean {
  return head.byteLength >= GGUF_FILE_MAGIC.byteLength && GGUF_FILE_MAGIC.every((b, i) => head[i] === b)
}
