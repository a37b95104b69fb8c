/**
 * PCR arithmetic: a register starts at zero and each extension replaces it with
 * SHA-384(old value ‖ data), so a final value commits to every input in order.
 */
import { createHash } from 'node:crypto';

/** PCR values are SHA-384 digests. */
export const PCR_BYTES = 48;

/** Returns SHA-384(`current` ‖ `data`). */
export function extendPcrValue(current: Uint8Array, data: Uint8Array): Uint8Array {
  return new Uint8Array(createHash('sha384').update(current).update(data).digest());
}

/** The value of a fresh register extended once with `data`. */
export function measure(data: Uint8Array): Uint8Array {
  return extendPcrValue(new Uint8Array(PCR_BYTES), data);
}
