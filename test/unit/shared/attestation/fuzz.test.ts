/**
 * Property-based fuzzing of the attestation parser and verifier: whatever the bytes, the only
 * possible outcome is a typed error (never a crash, a raw exception or an acceptance). fast-check
 * prints the seed and the shrunk input of any failure.
 */
import fc from 'fast-check';
import { encode } from 'cbor2';
import { describe, expect, it } from 'vitest';
import { ES384_PROTECTED_HEADER, verifyAttestation } from '../../../../shared/attestation/index.ts';
import { isNitroInferError } from '../../../../shared/errors.ts';
import { createSimulatedEnclaveIdentity } from '../../../../sim/index.ts';
import { coseParts, encodeCose, payloadOf } from '../../../helpers/documents.ts';

const FUZZ_TIME_LIMIT_MS = 4_000;

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.compare(Buffer.from(a), Buffer.from(b)) === 0;
}

function refusedWithTypedError(bytes: Uint8Array, roots?: Uint8Array[]): boolean {
  try {
    verifyAttestation(bytes, roots === undefined ? { allowDebug: true } : { allowDebug: true, roots });
  } catch (error) {
    if (isNitroInferError(error)) return true;
    throw error;
  }
  return false;
}

const identity = await createSimulatedEnclaveIdentity();
const genuine = await identity.nsm.attest({ nonce: new Uint8Array(16), userData: new Uint8Array(8) });
const roots = [identity.pki.rootCertificate];
const fields = payloadOf(genuine);

describe('fuzzing the verifier', () => {
  it('the simulated document used as a seed is accepted', () => {
    expect(refusedWithTypedError(genuine, roots)).toBe(false);
  });

  it('arbitrary bytes are refused with a typed error', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 2048 }), (bytes) => refusedWithTypedError(bytes, roots)),
      {
        numRuns: 20_000,
        interruptAfterTimeLimit: FUZZ_TIME_LIMIT_MS,
      },
    );
  });

  it('a genuine document with random bytes overwritten is refused with a typed error', () => {
    const mutation = fc.array(
      fc.tuple(fc.nat({ max: genuine.byteLength - 1 }), fc.integer({ min: 1, max: 255 })),
      {
        minLength: 1,
        maxLength: 4,
      },
    );
    fc.assert(
      fc.property(mutation, (changes) => {
        const bytes = new Uint8Array(genuine);
        for (const [offset, xor] of changes) bytes[offset]! ^= xor;
        return refusedWithTypedError(bytes, roots);
      }),
      { numRuns: 3_000, interruptAfterTimeLimit: FUZZ_TIME_LIMIT_MS },
    );
  });

  it('every truncated prefix of a genuine document is refused with a typed error', () => {
    for (let length = 0; length < genuine.byteLength; length++) {
      expect(refusedWithTypedError(genuine.subarray(0, length), roots)).toBe(true);
    }
  });

  // Any CBOR value, for slots where the verifier expects something specific.
  const anyValue = fc.oneof(
    fc.integer(),
    fc.bigInt({ min: -(2n ** 64n) + 1n, max: 2n ** 64n - 1n }),
    fc.string({ maxLength: 40 }),
    fc.uint8Array({ maxLength: 64 }),
    fc.constant(null),
    fc.boolean(),
    fc.double(),
    fc.array(fc.uint8Array({ maxLength: 8 }), { maxLength: 4 }),
    fc.dictionary(fc.string({ maxLength: 8 }), fc.integer(), { maxKeys: 4 }),
  );

  it('structurally plausible but wrong payloads are refused with a typed error', () => {
    const names = [...fields.keys()];
    fc.assert(
      fc.property(fc.constantFrom(...names), anyValue, (name, value) => {
        const payload = new Map(fields);
        payload.set(name, value);
        const parts = coseParts(genuine);
        parts[2] = encode(payload);
        const bytes = encodeCose(parts);
        fc.pre(!sameBytes(bytes, genuine)); // a change that changes nothing is no wrong payload
        return refusedWithTypedError(bytes, roots);
      }),
      { numRuns: 2_000, interruptAfterTimeLimit: FUZZ_TIME_LIMIT_MS },
    );
  });

  it('wrong COSE envelopes are refused with a typed error', () => {
    const parts = coseParts(genuine);
    fc.assert(
      fc.property(fc.nat({ max: 3 }), anyValue, fc.boolean(), (slot, value, tagged) => {
        const changed: unknown[] = [...parts];
        changed[slot] = value;
        const bytes = encodeCose(changed);
        fc.pre(!sameBytes(bytes, genuine));
        return refusedWithTypedError(tagged ? new Uint8Array([0xd2, ...bytes]) : bytes, roots);
      }),
      { numRuns: 2_000, interruptAfterTimeLimit: FUZZ_TIME_LIMIT_MS },
    );
  });

  it('random protected headers other than {1: -35} are refused', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 12 }), (header) => {
        fc.pre(!sameBytes(header, ES384_PROTECTED_HEADER));
        const parts = coseParts(genuine);
        parts[0] = header;
        return refusedWithTypedError(encodeCose(parts), roots);
      }),
      { numRuns: 2_000, interruptAfterTimeLimit: FUZZ_TIME_LIMIT_MS },
    );
  });
});
