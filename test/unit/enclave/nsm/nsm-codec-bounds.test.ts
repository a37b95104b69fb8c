/**
 * Bounds the codec enforces before a request reaches any device, so that every NSM (AWS's, QEMU's,
 * the simulation) gives the same code: PCR indices 0–31, LockPCRs ranges 0–32, extension data up
 * to 1024 bytes. Each limit is shown accepting its edge and refusing one past it.
 */
import { describe, expect, it } from 'vitest';
import {
  encodeDescribePcrRequest,
  encodeExtendPcrRequest,
  encodeLockPcrRequest,
  encodeLockPcrsRequest,
} from '../../../../enclave/nsm/nsm-codec.ts';
import { codeOf } from '../../../helpers/codes.ts';

const one = new Uint8Array([1]);

describe('NSM request bounds', () => {
  it.each([
    ['DescribePCR 31', () => encodeDescribePcrRequest(31), 'accepted'],
    ['DescribePCR 32', () => encodeDescribePcrRequest(32), 'ERR_NSM_INVALID_INDEX'],
    [
      'DescribePCR 300 (QEMU would answer InvalidOperation)',
      () => encodeDescribePcrRequest(300),
      'ERR_NSM_INVALID_INDEX',
    ],
    ['DescribePCR -1', () => encodeDescribePcrRequest(-1), 'ERR_NSM_INVALID_INDEX'],
    ['DescribePCR 1.5', () => encodeDescribePcrRequest(1.5), 'ERR_NSM_INVALID_INDEX'],
    ['ExtendPCR 32', () => encodeExtendPcrRequest(32, one), 'ERR_NSM_INVALID_INDEX'],
    ['LockPCR 32', () => encodeLockPcrRequest(32), 'ERR_NSM_INVALID_INDEX'],
    ['LockPCRs 32', () => encodeLockPcrsRequest(32), 'accepted'],
    ['LockPCRs 33', () => encodeLockPcrsRequest(33), 'ERR_NSM_INVALID_INDEX'],
    ['ExtendPCR with 1024 bytes', () => encodeExtendPcrRequest(16, new Uint8Array(1024)), 'accepted'],
    [
      'ExtendPCR with 1025 bytes',
      () => encodeExtendPcrRequest(16, new Uint8Array(1025)),
      'ERR_NSM_INPUT_TOO_LARGE',
    ],
  ])('%s', (_name, encode, expected) => {
    expect(codeOf(encode)).toBe(expected);
  });
});
