/**
 * What an enclave's attestation binds in `user_data` (DESIGN.md 4.3): a deterministic CBOR map
 * `{ v: 1, ohttp: <key config>, receipts: <receipt public key>, models: SHA-384(sorted (name, digest) list) }`,
 * at most 1024 bytes. A client that verified the document checks the served key config, receipt key
 * and model list against it.
 */
import { createHash } from 'node:crypto';
import { decodeCbor, encodeDeterministicCbor } from './cbor.ts';
import { ClientError } from './errors.ts';

/** The NSM accepts at most 1024 bytes of `user_data`. */
export const MAX_USER_DATA_BYTES = 1024;

/** Most CBOR items in `user_data`: the map and four keys with their values (9); nothing else is valid. */
export const MAX_USER_DATA_ITEMS = 16;

/**
 * Largest decoded-size estimate of `user_data` (`cbor-scan.ts`): the map (400), 8 members
 * (8 × 48), three byte-string views (3 × 160) and four short keys (≈ 4 × 50) ≈ 1.5 KiB; 8 KiB
 * also covers chunks joined into one copy of the 1 KiB input (2 KiB as UTF-16 text).
 */
export const MAX_USER_DATA_DECODED_BYTES = 8 * 1024;

/** A loaded model as attestations name it. */
export interface ModelIdentity {
  readonly name: string;
  /** SHA-384 of the plaintext model, hex. */
  readonly sha384: string;
}

/** The parts of the binding. */
export interface AttestationBinding {
  readonly ohttpKeyConfig: Uint8Array;
  readonly receiptPublicKey: Uint8Array;
  readonly models: readonly ModelIdentity[];
}

/**
 * SHA-384 over the deterministic CBOR of the (name, digest) list sorted by name: an array of
 * `[name, sha384 hex]` text-string pairs, names in UTF-16 code-unit order (model names are ASCII,
 * so also byte order).
 * @throws {ClientError} `ERR_CLIENT_BINDING_MISMATCH` when two entries share a name: such a list does
 * not say which model the name runs, and its digest would depend on the order it was served in.
 */
export function modelListDigest(models: readonly ModelIdentity[]): Uint8Array {
  const sorted = [...models].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  sorted.forEach((model, index) => {
    if (index > 0 && sorted[index - 1]?.name === model.name)
      throw new ClientError('ERR_CLIENT_BINDING_MISMATCH', 'the model list names one model twice');
  });
  const pairs = sorted.map((model) => [model.name, model.sha384]);
  return new Uint8Array(createHash('sha384').update(encodeDeterministicCbor(pairs)).digest());
}

/**
 * Encodes the binding for `user_data`.
 * @throws RangeError when it would exceed {@link MAX_USER_DATA_BYTES} (a key config that large is a bug).
 */
export function encodeUserData(binding: AttestationBinding): Uint8Array {
  const bytes = encodeDeterministicCbor(
    new Map<string, unknown>([
      ['v', 1],
      ['ohttp', binding.ohttpKeyConfig],
      ['receipts', binding.receiptPublicKey],
      ['models', modelListDigest(binding.models)],
    ]),
  );
  if (bytes.byteLength > MAX_USER_DATA_BYTES)
    throw new RangeError(`user_data of ${bytes.byteLength} bytes exceeds ${MAX_USER_DATA_BYTES}`);
  return bytes;
}

/** A decoded `user_data` binding; the model list is bound by its digest. */
export interface DecodedBinding {
  readonly ohttpKeyConfig: Uint8Array;
  readonly receiptPublicKey: Uint8Array;
  readonly modelsDigest: Uint8Array;
}

/**
 * Decodes `user_data` written by {@link encodeUserData}. Strict: exactly the four keys, version 1,
 * byte strings of plausible sizes, and canonical encoding (re-encoding gives the same bytes).
 * @throws {ClientError} `ERR_CLIENT_BINDING_MISMATCH`.
 */
export function decodeUserData(bytes: Uint8Array): DecodedBinding {
  const mismatch = (why: string) => new ClientError('ERR_CLIENT_BINDING_MISMATCH', `user_data: ${why}`);
  let value: unknown;
  try {
    value = decodeCbor(bytes, {
      maxBytes: MAX_USER_DATA_BYTES,
      maxDepth: 4,
      maxItems: MAX_USER_DATA_ITEMS,
      maxDecodedBytes: MAX_USER_DATA_DECODED_BYTES,
    });
  } catch {
    throw mismatch('not CBOR');
  }
  if (!(value instanceof Map) || value.size !== 4 || value.get('v') !== 1)
    throw mismatch('not a version 1 binding');
  const ohttp = value.get('ohttp');
  const receipts = value.get('receipts');
  const models = value.get('models');
  if (!(ohttp instanceof Uint8Array) || ohttp.byteLength > 512) throw mismatch('ohttp key config missing');
  if (!(receipts instanceof Uint8Array) || receipts.byteLength !== 32) throw mismatch('receipt key missing');
  if (!(models instanceof Uint8Array) || models.byteLength !== 48) throw mismatch('model digest missing');
  const canonical = encodeDeterministicCbor(
    new Map<string, unknown>([
      ['v', 1],
      ['ohttp', ohttp],
      ['receipts', receipts],
      ['models', models],
    ]),
  );
  if (!Buffer.from(canonical).equals(Buffer.from(bytes))) throw mismatch('not canonically encoded');
  return { ohttpKeyConfig: ohttp, receiptPublicKey: receipts, modelsDigest: models };
}
