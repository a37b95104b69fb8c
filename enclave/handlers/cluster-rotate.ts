/**
 * `cluster.rotate`: a new cluster key generated here, one epoch above the current one (the parent
 * schedules it; docs/protocols.md "Cluster key", rotation). Peers converge on it as the preferred key.
 */
import type { ClusterKeyring } from '../cluster/cluster-keyring.ts';
import type { LinkHandler, Log } from '../server/link-server.ts';

export function clusterRotateHandler(keyring: ClusterKeyring, log: Log): LinkHandler {
  return async () => {
    const status = await keyring.rotate();
    log('info', 'cluster.key_rotated', { epoch: status.epoch });
    return { ...status };
  };
}
