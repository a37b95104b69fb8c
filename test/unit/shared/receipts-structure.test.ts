/**
 * A receipt arrives inside the response but is built by the enclave's code, which a client does
 * not run: every structural refusal of verifyReceipt, including payloads that carry a valid
 * signature over the wrong shape (signed here with a test key, as a faulty enclave would).
 */
import { generateKeyPairSync, sign } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { encode as encodeAny } from 'cbor2';
import { encodeCbor } from '../../../shared/cbor.ts';
import { MAX_RECEIPT_BYTES, sha256, verifyReceipt } from '../../../shared/receipts.ts';
import { codeOf } from '../../helpers/codes.ts';

const keys = generateKeyPairSync('ed25519');
const raw = new Uint8Array(Buffer.from(keys.publicKey.export({ format: 'jwk' }).x as string, 'base64url'));
/** The domain prefix the receipt module documents: "nitro-infer receipt v1" ‖ 0x00. */
const DOMAIN = Buffer.from('nitro-infer receipt v1\0');

const fields = (): Map<string, unknown> =>
  new Map<string, unknown>([
    ['v', 1],
    ['time', 1_795_000_000_000],
    ['model', 'dense'],
    ['sha384', 'ab'.repeat(48)],
    ['request', sha256(Buffer.from('request'))],
    ['response', sha256(Buffer.from('response'))],
    ['keyConfig', sha256(Buffer.from('key config'))],
  ]);

/** `[payload, signature]` with a genuine signature over whatever `payload` is. */
function signed(payload: unknown): string {
  // Our encoder refuses floats; a hostile signer's payload may hold one, so write that with cbor2.
  const bytes = containsFloat(payload) ? encodeAny(payload) : encodeCbor(payload);
  const signature = sign(null, Buffer.concat([DOMAIN, bytes]), keys.privateKey);
  return Buffer.from(encodeCbor([bytes, new Uint8Array(signature)])).toString('base64url');
}

function containsFloat(value: unknown): boolean {
  if (typeof value === 'number') return !Number.isInteger(value);
  if (value instanceof Map) return [...value.values()].some(containsFloat);
  return Array.isArray(value) && value.some(containsFloat);
}

function withField(name: string, value: unknown): Map<string, unknown> {
  const map = fields();
  if (value === undefined) map.delete(name);
  else map.set(name, value);
  return map;
}

const base64url = (bytes: Uint8Array) => Buffer.from(bytes).toString('base64url');

describe('verifyReceipt refuses, with ERR_RECEIPT_INVALID', () => {
  it('accepts the well-formed receipt these cases start from', () => {
    expect(verifyReceipt(signed(fields()), raw).model).toBe('dense');
  });

  it.each<[string, () => string, Uint8Array?]>([
    [
      'more characters than MAX_RECEIPT_BYTES allows',
      () => 'A'.repeat(Math.ceil((MAX_RECEIPT_BYTES * 4) / 3) + 8),
    ],
    ['bytes that are not CBOR', () => base64url(Uint8Array.of(0xff))],
    ['a CBOR map instead of [payload, signature]', () => base64url(encodeCbor(new Map([[1, 2]])))],
    [
      'three elements',
      () => base64url(encodeCbor([new Uint8Array(1), new Uint8Array(64), new Uint8Array(1)])),
    ],
    ['a text payload', () => base64url(encodeCbor(['payload', new Uint8Array(64)]))],
    ['a payload that is not CBOR', () => base64url(encodeCbor([Uint8Array.of(0xff), new Uint8Array(64)]))],
    ['a 63-byte signature', () => base64url(encodeCbor([encodeCbor(fields()), new Uint8Array(63)]))],
    ['a 31-byte public key', () => signed(fields()), new Uint8Array(31)],
    ['a signed payload that is an array', () => signed([1])],
    ['a signed version 2', () => signed(withField('v', 2))],
    ['a signed payload without a model', () => signed(withField('model', undefined))],
    ['a numeric model', () => signed(withField('model', 7))],
    ['a 31-byte request digest', () => signed(withField('request', new Uint8Array(31)))],
    ['a text response digest', () => signed(withField('response', 'ab'.repeat(16)))],
    ['a fractional time', () => signed(withField('time', 1.5))],
    ['a text time', () => signed(withField('time', '1795000000000'))],
    ['no key config digest', () => signed(withField('keyConfig', undefined))],
  ])('%s', (_what, encoded, key = raw) => {
    expect(codeOf(() => verifyReceipt(encoded(), key))).toBe('ERR_RECEIPT_INVALID');
  });

  it('a key config other than the one the request was sealed to', () => {
    expect(codeOf(() => verifyReceipt(signed(fields()), raw, { keyConfig: Buffer.from('key config') }))).toBe(
      'accepted',
    );
    expect(codeOf(() => verifyReceipt(signed(fields()), raw, { keyConfig: Buffer.from('other') }))).toBe(
      'ERR_RECEIPT_INVALID',
    );
  });
});
