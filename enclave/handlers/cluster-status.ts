/** `cluster.status`: the cluster key's public facts (fingerprint, epoch, creation time, key config), for parents to converge. */
import type { ClusterKeyring } from '../cluster/cluster-keyring.ts';
import type { LinkHandler } from '../server/link-server.ts';

export function clusterStatusHandler(keyring: ClusterKeyring): LinkHandler {
  return async () => ({ ...keyring.status() });
}
