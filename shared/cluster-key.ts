/**
 * The OHTTP cluster key (DESIGN.md 7): replicas behind one load balancer must open any client's
 * request, so they share one X25519 key. Nobody outside an attested enclave ever sees it: the
 * operator asks KMS for `GenerateDataKeyWithoutPlaintext` (32 bytes, encryption context below) and
 * stores only the ciphertext blob; each enclave obtains the bytes with `Decrypt` + `Recipient`,
 * which the key policy allows only for the build's PCRs. The key config is derived
 * deterministically from the key, so every replica binds the same bytes in its attestation.
 */
import { createHash, createPrivateKey, createPublicKey, hkdfSync } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { DEFAULT_SYMMETRIC_ALGORITHMS, HPKE_KEM, encodeKeyConfig } from './ohttp/key-config.ts';

/** Bound in the KMS encryption context, so a model data key cannot be replayed as the cluster key. */
export const CLUSTER_KEY_CONTEXT: Readonly<Record<string, string>> = Object.freeze({
  'nitro-infer:purpose': 'ohttp-cluster-key',
});

/** X25519 secrets are 32 bytes. */
export const CLUSTER_KEY_BYTES = 32;

/** Largest KMS ciphertext blob accepted for the cluster key (KMS's own limit is 6144). */
export const MAX_CLUSTER_KEY_BLOB_BYTES = 6144;

const PKCS8_X25519_PREFIX = Buffer.from('302e020100300506032b656e04220420', 'hex');

const PKCS8_ED25519_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');

/** What replicas derive from the cluster secret: the OHTTP key and the receipt signing key. */
export interface ClusterKeys {
  readonly keyConfig: Uint8Array;
  /** The X25519 secret for the OHTTP gateway; the caller wipes it. */
  readonly ohttpSecret: Uint8Array;
  readonly receiptPrivateKey: KeyObject;
  /** Raw Ed25519 public key, bound in `user_data`. */
  readonly receiptPublicKey: Uint8Array;
}

/**
 * Derives the cluster's keys with HKDF-SHA256 under distinct labels: the OHTTP key (so one key
 * config everywhere) and the receipt key (so a receipt from any replica verifies with the key the
 * client attested once).
 */
export function deriveClusterKeys(secret: Uint8Array): ClusterKeys {
  if (secret.byteLength !== CLUSTER_KEY_BYTES) throw new RangeError('a cluster key is 32 bytes');
  const derive = (label: string) => new Uint8Array(hkdfSync('sha256', secret, new Uint8Array(0), label, 32));
  const ohttpSecret = derive('nitro-infer cluster ohttp x25519');
  const seed = derive('nitro-infer cluster receipts ed25519');
  const der = Buffer.concat([PKCS8_ED25519_PREFIX, seed]);
  seed.fill(0);
  try {
    const receiptPrivateKey = createPrivateKey({ key: der, format: 'der', type: 'pkcs8' });
    const x = createPublicKey(receiptPrivateKey).export({ format: 'jwk' }).x as string;
    return {
      keyConfig: clusterKeyConfig(ohttpSecret).keyConfig,
      ohttpSecret,
      receiptPrivateKey,
      receiptPublicKey: new Uint8Array(Buffer.from(x, 'base64url')),
    };
  } finally {
    der.fill(0);
  }
}

/** The key config for an X25519 secret: key id = first byte of SHA-256(public key). */
export function clusterKeyConfig(secret: Uint8Array): { keyConfig: Uint8Array; publicKey: Uint8Array } {
  if (secret.byteLength !== CLUSTER_KEY_BYTES) throw new RangeError('an X25519 secret is 32 bytes');
  const der = Buffer.concat([PKCS8_X25519_PREFIX, secret]);
  try {
    const x = createPublicKey(createPrivateKey({ key: der, format: 'der', type: 'pkcs8' })).export({
      format: 'jwk',
    }).x;
    const publicKey = new Uint8Array(Buffer.from(x as string, 'base64url'));
    const keyId = createHash('sha256').update(publicKey).digest()[0] as number;
    return {
      publicKey,
      keyConfig: encodeKeyConfig({
        keyId,
        kemId: HPKE_KEM.DHKEM_X25519_HKDF_SHA256,
        publicKey,
        symmetricAlgorithms: DEFAULT_SYMMETRIC_ALGORITHMS,
      }),
    };
  } finally {
    der.fill(0);
  }
}
