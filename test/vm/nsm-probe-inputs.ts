/**
 * The probe's inputs, shared with the test that checks its answers: the largest fields the NSM
 * takes (1024 bytes each, so the request is near the driver's 4 KiB), a PCR the application may
 * use, and how many PCRs LockPCRs then locks.
 */
const pattern = (length: number, seed: number) =>
  Uint8Array.from({ length }, (_, index) => (index * 31 + seed) & 0xff);

export const PROBE_INPUTS = {
  nonce: pattern(64, 1),
  userData: pattern(1024, 2),
  publicKey: pattern(1024, 3),
  extension: pattern(48, 4),
  pcr: 16,
  lockedRange: 20,
} as const;
