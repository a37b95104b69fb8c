/**
 * The enclave's own keys, generated at start-up and held only in memory as non-extractable use:
 * nothing here is ever written, logged or sent except public halves.
 *
 * - RSA-2048: the KMS `Recipient` key; its SubjectPublicKeyInfo goes in the attestation's
 *   `public_key`, exactly what KMS needs to wrap data keys to this enclave.
 * - X25519: the Oblivious HTTP gateway key (key config bound in `user_data`).
 * - Ed25519: signs inference receipts (public key bound in `user_data`).
 */
import { generateKeyPairSync, randomInt } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { DEFAULT_SYMMETRIC_ALGORITHMS, HPKE_KEM, encodeKeyConfig } from '../shared/ohttp/key-config.ts';

/** A private key with its public encodings. */
export interface EnclaveKeyPair {
  readonly privateKey: KeyObject;
  readonly publicKey: KeyObject;
}

/** All keys of one enclave instance. */
export interface EnclaveKeys {
  /** RSA-2048 for KMS `Recipient`. */
  readonly kmsRecipient: EnclaveKeyPair & { readonly publicKeySpki: Uint8Array };
  /** X25519 for OHTTP, with its RFC 9458 key config. */
  readonly ohttp: EnclaveKeyPair & { readonly keyConfig: Uint8Array; readonly keyId: number };
  /** Ed25519 for receipts, with its raw 32-byte public key. */
  readonly receipts: EnclaveKeyPair & { readonly publicKeyRaw: Uint8Array };
}

/** Generates a fresh set of enclave keys. */
export function generateEnclaveKeys(): EnclaveKeys {
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048, publicExponent: 0x10001 });
  const x25519 = generateKeyPairSync('x25519');
  const ed25519 = generateKeyPairSync('ed25519');
  const keyId = randomInt(256);
  return {
    kmsRecipient: {
      ...rsa,
      publicKeySpki: new Uint8Array(rsa.publicKey.export({ type: 'spki', format: 'der' })),
    },
    ohttp: {
      ...x25519,
      keyId,
      keyConfig: encodeKeyConfig({
        keyId,
        kemId: HPKE_KEM.DHKEM_X25519_HKDF_SHA256,
        publicKey: rawPublicKey(x25519.publicKey),
        symmetricAlgorithms: DEFAULT_SYMMETRIC_ALGORITHMS,
      }),
    },
    receipts: { ...ed25519, publicKeyRaw: rawPublicKey(ed25519.publicKey) },
  };
}

/** The raw 32-byte public key of an X25519 or Ed25519 key (its JWK `x`). */
function rawPublicKey(key: KeyObject): Uint8Array {
  const x = key.export({ format: 'jwk' }).x;
  if (x === undefined) throw new Error('key has no raw public form');
  return new Uint8Array(Buffer.from(x, 'base64url'));
}
