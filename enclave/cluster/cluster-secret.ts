/**
 * The OHTTP cluster secret (DESIGN.md 7; docs/protocols.md "Cluster key"): replicas behind one load
 * balancer must open any client's request, so they share one 32-byte secret from which each derives
 * the same OHTTP key config and receipt key. The secret is generated inside an enclave
 * (`crypto.randomBytes`) and moves only to a peer enclave whose attestation carries the same
 * PCR0/1/2(/8) — never through KMS, whose principals could know a key they had KMS make.
 * Only the enclave needs this module (the parent must not import key derivation).
 */
import { createHash, createPrivateKey, createPublicKey, hkdfSync, randomBytes } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { DEFAULT_SYMMETRIC_ALGORITHMS, HPKE_KEM, encodeKeyConfig } from '../../shared/ohttp/key-config.ts';
// DER, not JWK, for raw keys (a JWK export can deadlock Node 20's crypto; see node-primitives.ts).
import { rawPublicKey } from '../../shared/ohttp/node-primitives.ts';

/** X25519 secrets, and so the cluster secret, are 32 bytes. */
export const CLUSTER_SECRET_BYTES = 32;

const PKCS8_X25519_PREFIX = Buffer.from('302e020100300506032b656e04220420', 'hex');

const PKCS8_ED25519_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');

/** Public facts about a cluster key, authenticated by the exchange that delivered it. */
export interface ClusterKeyMetadata {
  /** Bumped by each rotation: a higher epoch is preferred (docs/protocols.md, convergence). */
  readonly epoch: number;
  /** When the enclave that generated the key generated it, epoch milliseconds. */
  readonly createdAt: number;
}

/** What replicas derive from the cluster secret: the OHTTP key and the receipt signing key. */
export interface ClusterKeys {
  readonly keyConfig: Uint8Array;
  /** The X25519 secret for the OHTTP gateway; the caller wipes it. */
  readonly ohttpSecret: Uint8Array;
  readonly receiptPrivateKey: KeyObject;
  /** Raw Ed25519 public key, bound in `user_data`. */
  readonly receiptPublicKey: Uint8Array;
  /** SHA-256 of the key config: a public name for the key, compared by parents to converge. */
  readonly fingerprint: Uint8Array;
}

/** A fresh cluster secret from the enclave's own generator; the caller keeps it in memory only. */
export function generateClusterSecret(): Uint8Array {
  return new Uint8Array(randomBytes(CLUSTER_SECRET_BYTES));
}

/**
 * Derives the cluster's keys with HKDF-SHA256 under distinct labels: the OHTTP key (so one key
 * config everywhere) and the receipt key (so a receipt from any replica verifies with the key the
 * client attested once).
 */
export function deriveClusterKeys(secret: Uint8Array): ClusterKeys {
  if (secret.byteLength !== CLUSTER_SECRET_BYTES) throw new RangeError('a cluster secret is 32 bytes');
  const derive = (label: string) => new Uint8Array(hkdfSync('sha256', secret, new Uint8Array(0), label, 32));
  const ohttpSecret = derive('nitro-infer cluster ohttp x25519');
  const seed = derive('nitro-infer cluster receipts ed25519');
  const der = Buffer.concat([PKCS8_ED25519_PREFIX, seed]);
  seed.fill(0);
  try {
    const receiptPrivateKey = createPrivateKey({ key: der, format: 'der', type: 'pkcs8' });
    const keyConfig = x25519KeyConfig(ohttpSecret);
    return {
      keyConfig,
      ohttpSecret,
      receiptPrivateKey,
      receiptPublicKey: rawPublicKey(createPublicKey(receiptPrivateKey)),
      fingerprint: new Uint8Array(createHash('sha256').update(keyConfig).digest()),
    };
  } finally {
    der.fill(0);
  }
}

/** The key config for an X25519 secret: key id = first byte of SHA-256(public key). */
function x25519KeyConfig(secret: Uint8Array): Uint8Array {
  const der = Buffer.concat([PKCS8_X25519_PREFIX, secret]);
  try {
    const publicKey = rawPublicKey(
      createPublicKey(createPrivateKey({ key: der, format: 'der', type: 'pkcs8' })),
    );
    const keyId = createHash('sha256').update(publicKey).digest()[0] as number;
    return encodeKeyConfig({
      keyId,
      kemId: HPKE_KEM.DHKEM_X25519_HKDF_SHA256,
      publicKey,
      symmetricAlgorithms: DEFAULT_SYMMETRIC_ALGORITHMS,
    });
  } finally {
    der.fill(0);
  }
}
