/**
 * Genuine documents with one thing broken: each must be refused with the code that names it.
 * Flips are applied to the document's own bytes wherever possible, so nothing is re-encoded that
 * the verifier would see differently.
 */
import { describe, expect, it } from 'vitest';
import { verifyAttestation } from '../../../../shared/attestation/index.ts';
import type { VerifyAttestationOptions } from '../../../../shared/attestation/index.ts';
import { isNitroInferError } from '../../../../shared/errors.ts';
import { SimulatedNitroPki } from '../../../../sim/index.ts';
import {
  coseParts,
  encodeCose,
  flipBit,
  indexOf,
  payloadOf,
  withPayload,
} from '../../../helpers/documents.ts';
import { FIXTURES_ABSENT, HAVE_FIXTURES, fixtureBytes, manifest } from '../../../helpers/fixtures.ts';

function codeOf(bytes: Uint8Array, options: VerifyAttestationOptions): string {
  try {
    verifyAttestation(bytes, options);
  } catch (error) {
    if (isNitroInferError(error)) return error.code;
    throw error;
  }
  return 'accepted';
}

const entry = manifest().find((candidate) => candidate.file.endsWith('evervault-prod-2022-10-13.cose'));

describe.skipIf(!HAVE_FIXTURES)('mutations of a genuine production document', () => {
  const document = HAVE_FIXTURES ? fixtureBytes(entry!.file) : new Uint8Array();
  const at = entry?.timestamp_ms ?? 0;
  const options = { at };
  const [protectedHeader, , payload, signature] = HAVE_FIXTURES ? coseParts(document) : ([] as never[]);
  const fields = HAVE_FIXTURES ? payloadOf(document) : new Map<string, unknown>();

  it('is accepted unmodified (so every refusal below is caused by its mutation)', () => {
    expect(codeOf(document, options)).toBe('accepted');
  });

  it.each([0, 1, 47, 48, 95])(
    'a flipped bit in signature byte %i → ERR_ATTESTATION_SIGNATURE_INVALID',
    (index) => {
      const offset = indexOf(document, signature) + index;
      expect(codeOf(flipBit(document, offset, 3), options)).toBe('ERR_ATTESTATION_SIGNATURE_INVALID');
    },
  );

  it.each([
    ['module_id', () => Buffer.from(fields.get('module_id') as string)],
    ['PCR0', () => (fields.get('pcrs') as Map<number, Uint8Array>).get(0)!],
    ['PCR15', () => (fields.get('pcrs') as Map<number, Uint8Array>).get(15)!],
    ['nonce', () => fields.get('nonce') as Uint8Array],
  ])('a flipped bit in the payload (%s) → ERR_ATTESTATION_SIGNATURE_INVALID', (_field, value) => {
    const offset = indexOf(document, value()) + 2;
    expect(offset).toBeGreaterThan(indexOf(document, payload));
    expect(codeOf(flipBit(document, offset, 0), options)).toBe('ERR_ATTESTATION_SIGNATURE_INVALID');
  });

  it('a flipped bit in the timestamp → ERR_ATTESTATION_SIGNATURE_INVALID', () => {
    const timestampField = Buffer.from('74696d657374616d70', 'hex'); // "timestamp"
    const offset = indexOf(document, timestampField) + timestampField.length + 8; // inside the uint64
    expect(codeOf(flipBit(document, offset, 0), options)).toBe('ERR_ATTESTATION_SIGNATURE_INVALID');
  });

  it('a protected header naming another algorithm → ERR_ATTESTATION_UNSUPPORTED_ALGORITHM', () => {
    const offset = indexOf(document, protectedHeader) + 3; // a1 01 38 [22]: -35 → -36
    expect(codeOf(flipBit(document, offset, 0), options)).toBe('ERR_ATTESTATION_UNSUPPORTED_ALGORITHM');
  });

  it('a protected header with a second parameter → ERR_ATTESTATION_UNSUPPORTED_ALGORITHM', () => {
    const parts = coseParts(document);
    parts[0] = new Uint8Array([0xa2, 0x01, 0x38, 0x22, 0x04, 0x40]);
    expect(codeOf(encodeCose(parts), options)).toBe('ERR_ATTESTATION_UNSUPPORTED_ALGORITHM');
  });

  it('a protected header with a flipped bit elsewhere → refused as malformed or unsupported', () => {
    const offset = indexOf(document, protectedHeader) + 1; // 01 → 00: key 0 instead of alg
    expect(codeOf(flipBit(document, offset, 0), options)).toBe('ERR_ATTESTATION_UNSUPPORTED_ALGORITHM');
  });

  it('a parameter in the unprotected header → ERR_ATTESTATION_MALFORMED', () => {
    const parts = coseParts(document);
    parts[1] = new Map([[4, new Uint8Array([1])]]);
    expect(codeOf(encodeCose(parts), options)).toBe('ERR_ATTESTATION_MALFORMED');
  });

  const cabundle = (fields.get('cabundle') ?? []) as Uint8Array[];
  const certificates = [
    ...cabundle.map((der, index) => [`cabundle[${index}]`, der] as const),
    ['certificate', (fields.get('certificate') ?? new Uint8Array()) as Uint8Array] as const,
  ];
  it.each(certificates)('a flipped bit in the signature of %s is refused', (name, der) => {
    // The last bytes of a certificate are its signature value.
    const offset = indexOf(document, der) + der.byteLength - 2;
    const expected =
      name === 'cabundle[0]' ? 'ERR_ATTESTATION_ROOT_UNTRUSTED' : 'ERR_ATTESTATION_CHAIN_INVALID';
    expect(codeOf(flipBit(document, offset, 1), options)).toBe(expected);
  });

  it.each(certificates)('a flipped bit in the public key of %s is refused', (name, der) => {
    // The key sits just before the extensions; 200 bytes from the end is inside it for every Nitro certificate.
    const offset = indexOf(document, der) + der.byteLength - 200;
    const code = codeOf(flipBit(document, offset, 0), options);
    expect(code).not.toBe('accepted');
    if (name === 'cabundle[0]') expect(code).toBe('ERR_ATTESTATION_ROOT_UNTRUSTED');
  });

  it('a swapped root (a simulated one with the same shape) → ERR_ATTESTATION_ROOT_UNTRUSTED', () => {
    const pki = SimulatedNitroPki.create({ now: at });
    const swapped = withPayload(document, (fields) => {
      fields.set('cabundle', [pki.rootCertificate, ...cabundle.slice(1)]);
    });
    expect(codeOf(swapped, options)).toBe('ERR_ATTESTATION_ROOT_UNTRUSTED');
    // Even with that root trusted, the chain does not lead to it.
    expect(codeOf(swapped, { ...options, roots: [pki.rootCertificate] })).toBe(
      'ERR_ATTESTATION_CHAIN_INVALID',
    );
  });

  it('a cabundle in the wrong order → refused', () => {
    const reordered = withPayload(document, (fields) => {
      fields.set('cabundle', [cabundle[0], cabundle[2], cabundle[1], cabundle[3]]);
    });
    expect(codeOf(reordered, options)).toBe('ERR_ATTESTATION_CHAIN_INVALID');
  });

  it('an intermediate removed from the cabundle → ERR_ATTESTATION_CHAIN_INVALID', () => {
    const shortened = withPayload(document, (fields) => {
      fields.set('cabundle', [cabundle[0], cabundle[1], cabundle[3]]);
    });
    expect(codeOf(shortened, options)).toBe('ERR_ATTESTATION_CHAIN_INVALID');
  });

  const step = HAVE_FIXTURES ? Math.max(1, Math.floor(document.byteLength / 97)) : 1;
  const offsets = HAVE_FIXTURES
    ? [
        0,
        1,
        2,
        5,
        6,
        7,
        ...Array.from({ length: 96 }, (_, index) => index * step + 3),
        document.byteLength - 1,
      ]
    : [];
  it.each(offsets)('truncated to %i bytes → ERR_ATTESTATION_MALFORMED', (length) => {
    expect(codeOf(document.subarray(0, length), options)).toBe('ERR_ATTESTATION_MALFORMED');
  });

  it('a trailing byte → ERR_ATTESTATION_MALFORMED', () => {
    const extended = new Uint8Array(document.byteLength + 1);
    extended.set(document);
    expect(codeOf(extended, options)).toBe('ERR_ATTESTATION_MALFORMED');
  });

  it('a wrong expected PCR → ERR_ATTESTATION_PCR_MISMATCH', () => {
    const wrong = entry!.pcr0.replace(/^./, (digit) => (digit === '0' ? '1' : '0'));
    expect(codeOf(document, { ...options, expectedPcrs: { 0: wrong } })).toBe('ERR_ATTESTATION_PCR_MISMATCH');
    expect(codeOf(document, { ...options, expectedPcrs: { 20: entry!.pcr0 } })).toBe(
      'ERR_ATTESTATION_PCR_MISMATCH',
    );
    expect(codeOf(document, { ...options, expectedPcrs: { 0: entry!.pcr0 } })).toBe('accepted');
  });

  it('a nonce mismatch → ERR_ATTESTATION_NONCE_MISMATCH', () => {
    const nonce = new Uint8Array(fields.get('nonce') as Uint8Array);
    expect(codeOf(document, { ...options, nonce })).toBe('accepted');
    expect(codeOf(document, { ...options, nonce: flipBit(nonce, 0) })).toBe('ERR_ATTESTATION_NONCE_MISMATCH');
    expect(codeOf(document, { ...options, nonce: nonce.subarray(1) })).toBe('ERR_ATTESTATION_NONCE_MISMATCH');
  });

  it('freshness: older than the maximum age → ERR_ATTESTATION_STALE', () => {
    expect(codeOf(document, { at: at + 60_000, maxAgeMs: 120_000 })).toBe('accepted');
    expect(codeOf(document, { at: at + 60_000, maxAgeMs: 30_000 })).toBe('ERR_ATTESTATION_STALE');
  });

  it('an impossible policy → ERR_POLICY_INVALID, not a silent pass', () => {
    expect(codeOf(document, { ...options, expectedPcrs: { 32: entry!.pcr0 } })).toBe('ERR_POLICY_INVALID');
    expect(codeOf(document, { ...options, expectedPcrs: { 0: 'abcd' } })).toBe('ERR_POLICY_INVALID');
    expect(codeOf(document, { ...options, maxAgeMs: -1 })).toBe('ERR_POLICY_INVALID');
  });

  it.each([
    ['an unknown field', (fields: Map<string, unknown>) => fields.set('extra', 1)],
    ['digest SHA256', (fields: Map<string, unknown>) => fields.set('digest', 'SHA256')],
    [
      'a 32-byte PCR',
      (fields: Map<string, unknown>) =>
        (fields.get('pcrs') as Map<number, Uint8Array>).set(3, new Uint8Array(32)),
    ],
    [
      'PCR index 32',
      (fields: Map<string, unknown>) =>
        (fields.get('pcrs') as Map<number, Uint8Array>).set(32, new Uint8Array(48)),
    ],
    ['a missing certificate', (fields: Map<string, unknown>) => fields.delete('certificate')],
    ['an empty cabundle', (fields: Map<string, unknown>) => fields.set('cabundle', [])],
    ['a text nonce', (fields: Map<string, unknown>) => fields.set('nonce', 'abc')],
    [
      'a 1025-byte user_data',
      (fields: Map<string, unknown>) => fields.set('user_data', new Uint8Array(1025)),
    ],
    ['a negative timestamp', (fields: Map<string, unknown>) => fields.set('timestamp', -1)],
    ['an empty module_id', (fields: Map<string, unknown>) => fields.set('module_id', '')],
  ])('a payload with %s → ERR_ATTESTATION_PAYLOAD_INVALID', (_name, change) => {
    expect(codeOf(withPayload(document, change), options)).toBe('ERR_ATTESTATION_PAYLOAD_INVALID');
  });
});

describe.skipIf(HAVE_FIXTURES)('mutations of a genuine production document', () => {
  it.skip(FIXTURES_ABSENT, () => {});
});
