/**
 * A PCR mismatch says which PCR, what the policy expected and what the document carries (issue 12
 * item 5): PCRs are public measurements, and the operator's next step is to compare them.
 */
import { describe, expect, it } from 'vitest';
import { checkPolicy } from '../../../../shared/attestation/index.ts';
import type { AttestationDocument } from '../../../../shared/attestation/index.ts';

const document = (pcrs: ReadonlyMap<number, Uint8Array>): AttestationDocument => ({
  moduleId: 'i-0123456789abcdef0-enc0123456789abcdef',
  digest: 'SHA384',
  timestamp: 1_700_000_000_000,
  pcrs,
  certificate: new Uint8Array(0),
  cabundle: [],
  publicKey: undefined,
  userData: undefined,
  nonce: undefined,
});

const failure = (pcrs: ReadonlyMap<number, Uint8Array>, expected: ReadonlyMap<number, Uint8Array>) => {
  try {
    checkPolicy(document(pcrs), {}, expected, 1_700_000_000_000);
  } catch (error) {
    return { code: (error as { code: string }).code, message: (error as Error).message };
  }
  return undefined;
};

describe('PCR mismatch messages', () => {
  it('show the expected and the received value in hex', () => {
    const expected = new Uint8Array(48).fill(0xab);
    const received = new Uint8Array(48).fill(0x5a);
    expect(failure(new Map([[0, received]]), new Map([[0, expected]]))).toEqual({
      code: 'ERR_ATTESTATION_PCR_MISMATCH',
      message: `PCR0 does not match: expected ${'ab'.repeat(48)}, the document has ${'5a'.repeat(48)}`,
    });
  });

  it('an absent PCR shows the expected value', () => {
    const expected = new Uint8Array(48).fill(0x01);
    expect(
      failure(
        new Map([[0, expected]]),
        new Map([
          [0, expected],
          [8, expected],
        ]),
      ),
    ).toEqual({
      code: 'ERR_ATTESTATION_PCR_MISMATCH',
      message: `PCR8 is absent from the document (expected ${'01'.repeat(48)})`,
    });
  });
});
