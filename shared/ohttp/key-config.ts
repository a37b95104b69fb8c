/**
 * Oblivious HTTP key configurations (RFC 9458 section 3): what a client needs to encrypt to the
 * gateway. Encoded here so the enclave can bind its key config into its attestation (DESIGN.md 4.3).
 */

import { OhttpError } from '../errors.ts';

/** HPKE identifiers (RFC 9180 section 7). */
export const HPKE_KEM = { DHKEM_X25519_HKDF_SHA256: 0x0020 } as const;
export const HPKE_KDF = { HKDF_SHA256: 0x0001 } as const;
export const HPKE_AEAD = { AES_128_GCM: 0x0001, AES_256_GCM: 0x0002, CHACHA20_POLY1305: 0x0003 } as const;

/** The cipher suites nitro-infer offers, preferred first (DESIGN.md 4.2). */
export const DEFAULT_SYMMETRIC_ALGORITHMS = [
  { kdfId: HPKE_KDF.HKDF_SHA256, aeadId: HPKE_AEAD.AES_256_GCM },
  { kdfId: HPKE_KDF.HKDF_SHA256, aeadId: HPKE_AEAD.AES_128_GCM },
  { kdfId: HPKE_KDF.HKDF_SHA256, aeadId: HPKE_AEAD.CHACHA20_POLY1305 },
] as const;

/** One key configuration. */
export interface KeyConfig {
  readonly keyId: number;
  readonly kemId: number;
  /** The KEM public key (32 bytes for X25519). */
  readonly publicKey: Uint8Array;
  readonly symmetricAlgorithms: readonly { readonly kdfId: number; readonly aeadId: number }[];
}

/**
 * Encodes a key configuration:
 * `key_id(8) ‖ kem_id(16) ‖ public_key ‖ length(16) ‖ (kdf_id(16) ‖ aead_id(16))*`.
 */
export function encodeKeyConfig(config: KeyConfig): Uint8Array {
  const algorithms = config.symmetricAlgorithms;
  const bytes = new Uint8Array(3 + config.publicKey.byteLength + 2 + 4 * algorithms.length);
  const view = new DataView(bytes.buffer);
  view.setUint8(0, config.keyId);
  view.setUint16(1, config.kemId);
  bytes.set(config.publicKey, 3);
  let offset = 3 + config.publicKey.byteLength;
  view.setUint16(offset, 4 * algorithms.length);
  offset += 2;
  for (const { kdfId, aeadId } of algorithms) {
    view.setUint16(offset, kdfId);
    view.setUint16(offset + 2, aeadId);
    offset += 4;
  }
  return bytes;
}

/** X25519 public keys are 32 bytes (RFC 9180 section 7.1: Npk). */
export const X25519_PUBLIC_KEY_BYTES = 32;

/** Most symmetric algorithm pairs read from one config (a sane bound; RFC 9458 allows 16383). */
export const MAX_SYMMETRIC_ALGORITHMS = 64;

/**
 * RFC 9458 section 5.3: the problem type a gateway answers when "an Encapsulated Request used an
 * outdated or incorrect key configuration"; the parent sends it, the SDK re-attests on it alone.
 */
export const OHTTP_KEY_PROBLEM_TYPE = 'https://iana.org/assignments/http-problem-types#ohttp-key';
/** RFC 9457's media type for problem details. */
export const PROBLEM_JSON_TYPE = 'application/problem+json';

const KNOWN_AEADS: ReadonlySet<number> = new Set(Object.values(HPKE_AEAD));

/**
 * Decodes exactly one key configuration (no trailing bytes). Only DHKEM(X25519, HKDF-SHA256) is
 * accepted; unknown KDF/AEAD pairs are kept out of the result so a client never picks one.
 * @throws {OhttpError} `ERR_OHTTP_MALFORMED` or `ERR_OHTTP_KEY_UNKNOWN`.
 */
export function decodeKeyConfig(bytes: Uint8Array): KeyConfig {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.byteLength < 3) throw new OhttpError('ERR_OHTTP_MALFORMED', 'key config too short');
  const keyId = view.getUint8(0);
  const kemId = view.getUint16(1);
  if (kemId !== HPKE_KEM.DHKEM_X25519_HKDF_SHA256) {
    throw new OhttpError('ERR_OHTTP_KEY_UNKNOWN', `KEM 0x${kemId.toString(16)} is not supported`);
  }
  const algorithmsAt = 3 + X25519_PUBLIC_KEY_BYTES;
  if (bytes.byteLength < algorithmsAt + 2)
    throw new OhttpError('ERR_OHTTP_MALFORMED', 'key config too short');
  const length = view.getUint16(algorithmsAt);
  if (length === 0 || length % 4 !== 0 || length / 4 > MAX_SYMMETRIC_ALGORITHMS) {
    throw new OhttpError('ERR_OHTTP_MALFORMED', 'symmetric algorithm list has a bad length');
  }
  if (bytes.byteLength !== algorithmsAt + 2 + length) {
    throw new OhttpError('ERR_OHTTP_MALFORMED', 'key config length does not match its contents');
  }
  const symmetricAlgorithms: { kdfId: number; aeadId: number }[] = [];
  for (let offset = algorithmsAt + 2; offset < bytes.byteLength; offset += 4) {
    const kdfId = view.getUint16(offset);
    const aeadId = view.getUint16(offset + 2);
    if (kdfId === HPKE_KDF.HKDF_SHA256 && KNOWN_AEADS.has(aeadId))
      symmetricAlgorithms.push({ kdfId, aeadId });
  }
  if (symmetricAlgorithms.length === 0) {
    throw new OhttpError('ERR_OHTTP_KEY_UNKNOWN', 'the key config offers no supported cipher suite');
  }
  return {
    keyId,
    kemId,
    publicKey: bytes.slice(3, algorithmsAt),
    symmetricAlgorithms,
  };
}

/** Decodes an `application/ohttp-keys` body (RFC 9540 section 3): length-prefixed key configs. */
export function decodeKeyConfigList(bytes: Uint8Array): Uint8Array[] {
  const configs: Uint8Array[] = [];
  let offset = 0;
  while (offset < bytes.byteLength) {
    if (bytes.byteLength - offset < 2)
      throw new OhttpError('ERR_OHTTP_MALFORMED', 'truncated key config list');
    const length = (bytes[offset]! << 8) | bytes[offset + 1]!;
    offset += 2;
    if (length === 0 || length > bytes.byteLength - offset) {
      throw new OhttpError('ERR_OHTTP_MALFORMED', 'truncated key config list');
    }
    configs.push(bytes.slice(offset, offset + length));
    offset += length;
  }
  return configs;
}
