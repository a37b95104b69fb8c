/**
 * What the cluster key exchange binds in each side's attestation `user_data`, and the sealed
 * payload (docs/protocols.md "Cluster key"). Each `user_data` names its purpose, so a document an
 * enclave made for another reason (an `attest` answer, the other direction of this exchange) is
 * never taken for this one. Encodings are deterministic CBOR, decoded strictly: exactly the listed
 * keys, exact sizes, and canonical bytes (re-encoding gives the input).
 */
import { MAX_USER_DATA_DECODED_BYTES, MAX_USER_DATA_ITEMS } from '../../shared/binding.ts';
import { decodeCbor, encodeDeterministicCbor } from '../../shared/cbor.ts';
import { ClusterError } from '../../shared/errors.ts';
import { CLUSTER_SECRET_BYTES } from './cluster-secret.ts';
import type { ClusterKeyMetadata } from './cluster-secret.ts';
import { CLUSTER_NONCE_BYTES } from './nonce-store.ts';

/** The NSM takes at most 1024 bytes of `user_data`. */
export const MAX_EXCHANGE_USER_DATA_BYTES = 1024;

/** X25519 public keys and SHA-256 digests are 32 bytes. */
const KEY_BYTES = 32;
const DIGEST_BYTES = 32;

/** Key configs this enclave makes are 41 bytes; 512 leaves room and still fits `user_data`. */
const MAX_KEY_CONFIG_BYTES = 512;

export const REQUEST_PURPOSE = 'cluster-key-request';
export const RESPONSE_PURPOSE = 'cluster-key-response';

/** The requester's binding: the key to seal to, and the nonce the holder's document must carry. */
export interface RequestBinding {
  readonly exchangeKey: Uint8Array;
  readonly requestNonce: Uint8Array;
}

/** The holder's binding: the key config it shares, and SHA-256(enc ‖ ciphertext) of what it sealed. */
export interface ResponseBinding {
  readonly keyConfig: Uint8Array;
  readonly sealedDigest: Uint8Array;
}

/** The sealed payload: the secret and its public metadata. */
export interface SharedClusterKey extends ClusterKeyMetadata {
  readonly secret: Uint8Array;
}

export function encodeRequestBinding(binding: RequestBinding): Uint8Array {
  return encodeDeterministicCbor(
    new Map<string, unknown>([
      ['v', 1],
      ['purpose', REQUEST_PURPOSE],
      ['exchangeKey', binding.exchangeKey],
      ['requestNonce', binding.requestNonce],
    ]),
  );
}

export function encodeResponseBinding(binding: ResponseBinding): Uint8Array {
  return encodeDeterministicCbor(
    new Map<string, unknown>([
      ['v', 1],
      ['purpose', RESPONSE_PURPOSE],
      ['keyConfig', binding.keyConfig],
      ['sealedDigest', binding.sealedDigest],
    ]),
  );
}

/** @throws {ClusterError} `ERR_CLUSTER_BINDING_MISMATCH`. */
export function decodeRequestBinding(userData: Uint8Array | undefined): RequestBinding {
  const map = decodeBinding(userData, REQUEST_PURPOSE);
  const exchangeKey = bytesField(map, 'exchangeKey', KEY_BYTES, KEY_BYTES);
  const requestNonce = bytesField(map, 'requestNonce', CLUSTER_NONCE_BYTES, CLUSTER_NONCE_BYTES);
  canonical(userData as Uint8Array, encodeRequestBinding({ exchangeKey, requestNonce }));
  return { exchangeKey, requestNonce };
}

/** @throws {ClusterError} `ERR_CLUSTER_BINDING_MISMATCH`. */
export function decodeResponseBinding(userData: Uint8Array | undefined): ResponseBinding {
  const map = decodeBinding(userData, RESPONSE_PURPOSE);
  const keyConfig = bytesField(map, 'keyConfig', 1, MAX_KEY_CONFIG_BYTES);
  const sealedDigest = bytesField(map, 'sealedDigest', DIGEST_BYTES, DIGEST_BYTES);
  canonical(userData as Uint8Array, encodeResponseBinding({ keyConfig, sealedDigest }));
  return { keyConfig, sealedDigest };
}

export function encodeSharedKey(key: SharedClusterKey): Uint8Array {
  return encodeDeterministicCbor(
    new Map<string, unknown>([
      ['v', 1],
      ['secret', key.secret],
      ['epoch', key.epoch],
      ['createdAt', key.createdAt],
    ]),
  );
}

/**
 * Decodes an opened payload. It was sealed by a genuine peer, but is still checked: a peer with the
 * same PCRs runs this code, and a check costs nothing.
 * @throws {ClusterError} `ERR_CLUSTER_BINDING_MISMATCH`.
 */
export function decodeSharedKey(bytes: Uint8Array): SharedClusterKey {
  let value: unknown;
  try {
    // A map of 4 entries is 9 items; the decoded size bound is user_data's (shared/binding.ts).
    value = decodeCbor(bytes, {
      maxBytes: 256,
      maxDepth: 2,
      maxItems: MAX_USER_DATA_ITEMS,
      maxDecodedBytes: MAX_USER_DATA_DECODED_BYTES,
    });
  } catch {
    throw mismatch('the sealed cluster key is not CBOR');
  }
  if (!(value instanceof Map) || value.size !== 4 || value.get('v') !== 1) throw mismatch('not a v1 key');
  const secret = bytesField(value, 'secret', CLUSTER_SECRET_BYTES, CLUSTER_SECRET_BYTES);
  const epoch = value.get('epoch');
  const createdAt = value.get('createdAt');
  if (!Number.isSafeInteger(epoch) || (epoch as number) < 1)
    throw mismatch('epoch must be a positive integer');
  if (!Number.isSafeInteger(createdAt) || (createdAt as number) < 0)
    throw mismatch('createdAt must be a time');
  return { secret, epoch: epoch as number, createdAt: createdAt as number };
}

function decodeBinding(userData: Uint8Array | undefined, purpose: string): Map<unknown, unknown> {
  if (userData === undefined) throw mismatch('the document carries no user_data');
  let value: unknown;
  try {
    value = decodeCbor(userData, {
      maxBytes: MAX_EXCHANGE_USER_DATA_BYTES,
      maxDepth: 2,
      maxItems: MAX_USER_DATA_ITEMS,
      maxDecodedBytes: MAX_USER_DATA_DECODED_BYTES,
    });
  } catch {
    throw mismatch('user_data is not CBOR');
  }
  if (!(value instanceof Map) || value.size !== 4 || value.get('v') !== 1) {
    throw mismatch('user_data is not a v1 cluster exchange binding');
  }
  if (value.get('purpose') !== purpose) throw mismatch(`user_data is not a ${purpose}`);
  return value;
}

function bytesField(map: Map<unknown, unknown>, name: string, min: number, max: number): Uint8Array {
  const value = map.get(name);
  if (!(value instanceof Uint8Array) || value.byteLength < min || value.byteLength > max) {
    throw mismatch(`${name} must be ${min === max ? min : `${min} to ${max}`} bytes`);
  }
  return new Uint8Array(value);
}

function canonical(received: Uint8Array, expected: Uint8Array): void {
  if (!Buffer.from(received).equals(Buffer.from(expected)))
    throw mismatch('user_data is not canonically encoded');
}

function mismatch(message: string): ClusterError {
  return new ClusterError('ERR_CLUSTER_BINDING_MISMATCH', message);
}
