/**
 * Inference receipts (DESIGN.md 4.2): inside each encrypted response, a statement signed by the
 * enclave's receipt key (Ed25519, bound in the attestation's `user_data`) naming the model and its
 * SHA-384, the SHA-256 of the request and response bodies, the time, and the OHTTP key config the
 * request was sealed to. A client keeps it as proof of which attested code and model answered.
 *
 * Wire form: base64url of CBOR `[payload, signature]`, where `payload` is the deterministic CBOR
 * map below and the signature covers `"nitro-infer receipt v1" ‖ 0x00 ‖ payload` (domain separated).
 */
import { createHash, createPublicKey, sign, verify } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { decodeCbor, encodeCbor } from './cbor.ts';
import { ClientError, isNitroInferError } from './errors.ts';

/** The HTTP response header (inside the encryption) that carries the receipt. */
export const RECEIPT_HEADER = 'nitro-infer-receipt';
/** Largest encoded receipt accepted. */
export const MAX_RECEIPT_BYTES = 2048;

/**
 * Most CBOR items in a receipt's outer array (3: the array, payload, signature) or its payload
 * (15: the map and seven keys with their values); 32 leaves room for chunked strings only.
 */
export const MAX_RECEIPT_ITEMS = 32;

/**
 * Largest decoded-size estimate of either receipt layer (`cbor-scan.ts`): the payload's map
 * (400), 14 members (14 × 48), four views (4 × 160), a model name of up to 2 KiB as UTF-16
 * (4 KiB) ≈ 6 KiB; 16 KiB also covers chunks joined into one copy.
 */
export const MAX_RECEIPT_DECODED_BYTES = 16 * 1024;

const RECEIPT_CBOR_LIMITS = {
  maxBytes: MAX_RECEIPT_BYTES,
  maxDepth: 4,
  maxItems: MAX_RECEIPT_ITEMS,
  maxDecodedBytes: MAX_RECEIPT_DECODED_BYTES,
  // The plain forms a receipt is written in (a 64-bit time included) skip cbor2: a client
  // verifies one per response, and cbor2 cost ~0.25 ms of it (cbor-direct.ts; same values).
  direct: true,
} as const;
const DOMAIN = Buffer.from('nitro-infer receipt v1\0');

/** What a receipt states. */
export interface Receipt {
  readonly model: string;
  /** SHA-384 of the plaintext model, hex. */
  readonly sha384: string;
  /** SHA-256 of the inner request body. */
  readonly requestSha256: Uint8Array;
  /** SHA-256 of the inner response body. */
  readonly responseSha256: Uint8Array;
  /** Milliseconds since the epoch, by the enclave's clock. */
  readonly time: number;
  /** SHA-256 of the OHTTP key config the request was encrypted to. */
  readonly keyConfigSha256: Uint8Array;
}

export function sha256(bytes: Uint8Array): Uint8Array {
  return new Uint8Array(createHash('sha256').update(bytes).digest());
}

/**
 * The payload in deterministic CBOR (RFC 8949 section 4.2.1). The keys are written already in
 * deterministic order (shortest encoded key first, then bytewise) and every value has one
 * preferred encoding, so the fast encoder yields exactly the deterministic bytes — the tests
 * compare it with cbor2's canonical encoder on random receipts. (cbor2's canonical encoder costs
 * ~330 µs per receipt here, cbor-x ~16 µs.)
 */
export function encodeReceiptPayload(receipt: Receipt): Uint8Array {
  return encodeCbor(
    new Map<string, unknown>([
      ['v', 1],
      // cbor-x writes numbers above 2^32 as floats and BigInts always as 8-byte integers, which is
      // the shortest form exactly for values above 2^32.
      ['time', receipt.time > 0xffff_ffff ? BigInt(receipt.time) : receipt.time],
      ['model', receipt.model],
      ['sha384', receipt.sha384],
      ['request', receipt.requestSha256],
      ['response', receipt.responseSha256],
      ['keyConfig', receipt.keyConfigSha256],
    ]),
  );
}

/** Verification keys by raw bytes, so a client does not re-import the attested key per response. */
const publicKeys = new Map<string, KeyObject>();

function receiptPublicKey(raw: Uint8Array): KeyObject {
  const x = Buffer.from(raw).toString('base64url');
  let key = publicKeys.get(x);
  if (key === undefined) {
    key = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x }, format: 'jwk' });
    if (publicKeys.size > 64) publicKeys.clear();
    publicKeys.set(x, key);
  }
  return key;
}

/** Signs a receipt with the enclave's Ed25519 key; returns the header value. */
export function signReceipt(receipt: Receipt, privateKey: KeyObject): string {
  const payload = encodeReceiptPayload(receipt);
  const signature = sign(null, Buffer.concat([DOMAIN, payload]), privateKey);
  return Buffer.from(encodeCbor([payload, new Uint8Array(signature)])).toString('base64url');
}

/** What a verifier may insist on. */
export interface ReceiptExpectations {
  readonly model?: string;
  readonly sha384?: string;
  readonly request?: Uint8Array;
  readonly response?: Uint8Array;
  readonly keyConfig?: Uint8Array;
}

/**
 * Verifies a receipt against the raw Ed25519 public key the attestation bound, and against what
 * the caller knows (the model, its digest, the bodies it sent and received, the key config).
 * @throws {ClientError} `ERR_RECEIPT_INVALID` naming the first thing that does not match.
 */
export function verifyReceipt(
  encoded: string,
  publicKeyRaw: Uint8Array,
  expected: ReceiptExpectations = {},
): Receipt {
  const invalid = (why: string) => new ClientError('ERR_RECEIPT_INVALID', `receipt: ${why}`);
  if (encoded.length > (MAX_RECEIPT_BYTES * 4) / 3 + 4 || !/^[A-Za-z0-9_-]*$/.test(encoded))
    throw invalid('not base64url');
  let outer: unknown;
  let fields: unknown;
  try {
    outer = decodeCbor(Buffer.from(encoded, 'base64url'), RECEIPT_CBOR_LIMITS);
    if (
      !Array.isArray(outer) ||
      outer.length !== 2 ||
      !(outer[0] instanceof Uint8Array) ||
      !(outer[1] instanceof Uint8Array)
    ) {
      throw invalid('not [payload, signature]');
    }
    fields = decodeCbor(outer[0], RECEIPT_CBOR_LIMITS);
  } catch (error) {
    if (isNitroInferError(error) && error.code === 'ERR_RECEIPT_INVALID') throw error;
    throw invalid('not CBOR');
  }
  const [payload, signature] = outer as [Uint8Array, Uint8Array];
  if (publicKeyRaw.byteLength !== 32 || signature.byteLength !== 64)
    throw invalid('wrong key or signature size');
  if (!verify(null, Buffer.concat([DOMAIN, payload]), receiptPublicKey(publicKeyRaw), signature)) {
    throw invalid('bad signature');
  }
  if (!(fields instanceof Map) || fields.get('v') !== 1) throw invalid('unknown version');
  const text = (name: string) => {
    const value = (fields as Map<string, unknown>).get(name);
    if (typeof value !== 'string') throw invalid(`${name} missing`);
    return value;
  };
  const digest = (name: string) => {
    const value = (fields as Map<string, unknown>).get(name);
    if (!(value instanceof Uint8Array) || value.byteLength !== 32) throw invalid(`${name} missing`);
    return value;
  };
  const time = fields.get('time');
  if (typeof time !== 'number' || !Number.isSafeInteger(time)) throw invalid('time missing');
  const receipt: Receipt = {
    model: text('model'),
    sha384: text('sha384'),
    requestSha256: digest('request'),
    responseSha256: digest('response'),
    time,
    keyConfigSha256: digest('keyConfig'),
  };
  if (expected.model !== undefined && receipt.model !== expected.model)
    throw invalid('another model answered');
  if (expected.sha384 !== undefined && receipt.sha384 !== expected.sha384)
    throw invalid('another model digest');
  const same = (a: Uint8Array, b: Uint8Array) => Buffer.from(a).equals(Buffer.from(b));
  if (expected.request !== undefined && !same(receipt.requestSha256, sha256(expected.request)))
    throw invalid('request hash differs');
  if (expected.response !== undefined && !same(receipt.responseSha256, sha256(expected.response)))
    throw invalid('response hash differs');
  if (expected.keyConfig !== undefined && !same(receipt.keyConfigSha256, sha256(expected.keyConfig)))
    throw invalid('key config differs');
  return receipt;
}
