/**
 * Oblivious HTTP key configurations (RFC 9458 section 3): what a client needs to encrypt to the
 * gateway. Encoded here so the enclave can bind its key config into its attestation (DESIGN.md 4.3).
 */

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
