/**
 * Hands the enclave the OHTTP cluster key's KMS blob after every (re)connect (DESIGN.md 7). The
 * blob is ciphertext for KMS; only an enclave whose attestation the key policy accepts can open it.
 */
import { ArtifactError } from '../shared/errors.ts';
import { MAX_CLUSTER_KEY_BLOB_BYTES } from '../shared/cluster-key.ts';
import type { ArtifactSource, ArtifactStore } from './artifacts/artifact-source.ts';
import type { EnclaveLink, LinkLog } from './link/enclave-link.ts';

export function pushClusterKey(
  link: EnclaveLink,
  store: ArtifactStore,
  source: ArtifactSource,
  log: LinkLog,
): void {
  link.onConnect(async (current) => {
    const artifact = await store.open(source);
    if (artifact.size > MAX_CLUSTER_KEY_BLOB_BYTES) {
      throw new ArtifactError(
        'ERR_ARTIFACT_INTEGRITY',
        'the cluster key blob is larger than a KMS ciphertext',
      );
    }
    const parts: Uint8Array[] = [];
    for await (const part of artifact.body) parts.push(part);
    await current.request('ohttp.key', { blob: Buffer.concat(parts) }, { internal: true });
    log('info', 'ohttp.cluster_key_pushed', {});
  });
}
