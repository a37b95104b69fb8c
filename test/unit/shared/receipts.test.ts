/** Receipts: deterministic payload bytes, signatures that fail on any change, expectations enforced. */
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { encodeDeterministicCbor } from '../../../shared/cbor.ts';
import { encodeReceiptPayload, sha256, signReceipt, verifyReceipt } from '../../../shared/receipts.ts';
import type { Receipt } from '../../../shared/receipts.ts';
import { codeOf } from '../../helpers/codes.ts';

const keys = generateKeyPairSync('ed25519');
const raw = new Uint8Array(Buffer.from(keys.publicKey.export({ format: 'jwk' }).x as string, 'base64url'));
const receipt: Receipt = {
  model: 'dense',
  sha384: 'ab'.repeat(48),
  requestSha256: sha256(Buffer.from('request')),
  responseSha256: sha256(Buffer.from('response')),
  time: 1_795_000_000_000,
  keyConfigSha256: sha256(Buffer.from('key config')),
};

function canonical(value: Receipt): Uint8Array {
  return encodeDeterministicCbor(
    new Map<string, unknown>([
      ['model', value.model],
      ['keyConfig', value.keyConfigSha256],
      ['request', value.requestSha256],
      ['response', value.responseSha256],
      ['sha384', value.sha384],
      ['time', value.time],
      ['v', 1],
    ]),
  );
}

describe('receipts', () => {
  it('the payload is exactly deterministic CBOR, for any receipt', () => {
    fc.assert(
      fc.property(
        // Past 23 and 255 UTF-8 bytes (longer length heads), and non-ASCII text.
        fc.oneof(
          fc.string({ minLength: 1, maxLength: 128 }),
          fc.string({ minLength: 1, maxLength: 300, unit: 'grapheme' }),
        ),
        // Every integer head width, at and beside its bounds.
        fc.oneof(
          fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
          fc.constantFrom(0, 23, 24, 255, 256, 65_535, 65_536, 2 ** 32 - 1, 2 ** 32, Number.MAX_SAFE_INTEGER),
        ),
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        (model, time, digest) => {
          const value = { ...receipt, model, time, requestSha256: digest };
          expect(Buffer.from(encodeReceiptPayload(value)).equals(Buffer.from(canonical(value)))).toBe(true);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('verifies with the signer’s key and the expectations it was made for', () => {
    const encoded = signReceipt(receipt, keys.privateKey);
    expect(
      verifyReceipt(encoded, raw, {
        model: 'dense',
        sha384: receipt.sha384,
        request: Buffer.from('request'),
        response: Buffer.from('response'),
      }),
    ).toEqual(receipt);
  });

  it.each([
    ['another key', (encoded: string) => verifyReceipt(encoded, new Uint8Array(randomBytes(32)))],
    ['another model', (encoded: string) => verifyReceipt(encoded, raw, { model: 'other' })],
    ['another digest', (encoded: string) => verifyReceipt(encoded, raw, { sha384: 'cd'.repeat(48) })],
    [
      'another request',
      (encoded: string) => verifyReceipt(encoded, raw, { request: Buffer.from('requesT') }),
    ],
    ['another response', (encoded: string) => verifyReceipt(encoded, raw, { response: Buffer.from('') })],
    [
      'a flipped byte',
      (encoded: string) => {
        const bytes = Buffer.from(encoded, 'base64url');
        bytes[20]! ^= 1;
        return verifyReceipt(bytes.toString('base64url'), raw);
      },
    ],
    ['garbage', () => verifyReceipt('not*base64', raw)],
  ])('refuses %s with ERR_RECEIPT_INVALID', (_name, action) => {
    const encoded = signReceipt(receipt, keys.privateKey);
    expect(codeOf(() => action(encoded))).toBe('ERR_RECEIPT_INVALID');
  });
});
