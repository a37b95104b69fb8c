/**
 * Response padding (DESIGN.md 4.2): the relay learns sizes, so responses are padded up to a small
 * set of sizes — powers of two from 1 KiB to 64 KiB, then multiples of 64 KiB — with Binary HTTP's
 * zero padding (RFC 9292 section 3.8), which decoders ignore. The cost is at most 2× for small
 * responses and < 64 KiB for large ones.
 */

/** Smallest padded size. */
export const MIN_PADDED_BYTES = 1024;
/** Above this, sizes round up to multiples of it. */
export const PADDING_STEP_BYTES = 64 * 1024;

/** The padded size for a message of `length` bytes. */
export function paddedLength(length: number): number {
  if (length <= MIN_PADDED_BYTES) return MIN_PADDED_BYTES;
  if (length <= PADDING_STEP_BYTES) return 2 ** Math.ceil(Math.log2(length));
  return Math.ceil(length / PADDING_STEP_BYTES) * PADDING_STEP_BYTES;
}
