/** `ohttp.key`: installs the OHTTP cluster key from a KMS blob (DESIGN.md 7). */
import {
  CLUSTER_KEY_BYTES,
  CLUSTER_KEY_CONTEXT,
  MAX_CLUSTER_KEY_BLOB_BYTES,
  deriveClusterKeys,
} from '../../shared/cluster-key.ts';
import { KmsError } from '../../shared/errors.ts';
import type { OhttpKeys } from '../gateway/ohttp-keys.ts';
import type { AttestedKms } from '../kms/attested-kms.ts';
import type { LinkHandler, Log } from '../server/link-server.ts';
import { invalidRequest, requiredBytes } from './fields.ts';

export interface OhttpKeyDependencies {
  readonly kms: AttestedKms;
  readonly ohttpKeys: OhttpKeys;
  readonly allowedKeyArns?: readonly string[];
  readonly log: Log;
}

export function ohttpKeyHandler(dependencies: OhttpKeyDependencies): LinkHandler {
  return async (fields) => {
    const blob = requiredBytes(fields, 'blob', 1, MAX_CLUSTER_KEY_BLOB_BYTES);
    const released = await dependencies.kms.decrypt({
      CiphertextBlob: blob,
      EncryptionContext: { ...CLUSTER_KEY_CONTEXT },
    });
    const secret = released.Plaintext;
    try {
      const allowed = dependencies.allowedKeyArns;
      if (allowed !== undefined && !allowed.includes(released.KeyId)) {
        throw new KmsError(
          'ERR_KMS_ACCESS_DENIED',
          'the cluster key is sealed with a key this enclave does not accept',
        );
      }
      if (secret.byteLength !== CLUSTER_KEY_BYTES) throw invalidRequest('the cluster key must be 32 bytes');
      const cluster = deriveClusterKeys(secret);
      const keyConfig = cluster.keyConfig;
      try {
        await dependencies.ohttpKeys.install(keyConfig, cluster.ohttpSecret, {
          privateKey: cluster.receiptPrivateKey,
          publicKeyRaw: cluster.receiptPublicKey,
        });
      } finally {
        cluster.ohttpSecret.fill(0);
      }
      dependencies.log('info', 'ohttp.cluster_key_installed', { keyId: keyConfig[0] as number });
      return { keyConfig };
    } finally {
      secret.fill(0);
    }
  };
}
