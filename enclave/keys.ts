/**
 * The enclave's own keys, generated at start-up and held only in memory: nothing here is ever
 * written, logged or sent except public halves.
 *
 * - RSA-2048: the KMS `Recipient` key; its SubjectPublicKeyInfo goes in the attestation's
 *   `public_key`, exactly what KMS needs to wrap data keys to this enclave.
 *
 * The OHTTP and receipt keys are not here: they derive from the cluster secret
 * (`cluster/cluster-keyring.ts`), generated inside this enclave or received from an attested peer.
 */
import { generateKeyPairSync } from 'node:crypto';
import type { KeyObject } from 'node:crypto';

/** A private key with its public encodings. */
export interface EnclaveKeyPair {
  readonly privateKey: KeyObject;
  readonly publicKey: KeyObject;
}

/** All keys of one enclave instance. */
export interface EnclaveKeys {
  /** RSA-2048 for KMS `Recipient`. */
  readonly kmsRecipient: EnclaveKeyPair & { readonly publicKeySpki: Uint8Array };
}

/** Generates a fresh set of enclave keys. */
export function generateEnclaveKeys(): EnclaveKeys {
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048, publicExponent: 0x10001 });
  return {
    kmsRecipient: {
      ...rsa,
      publicKeySpki: new Uint8Array(rsa.publicKey.export({ type: 'spki', format: 'der' })),
    },
  };
}
