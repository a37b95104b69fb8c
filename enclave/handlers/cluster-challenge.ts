/** `cluster.challenge`: exchange step 1 on the holder — a fresh single-use challenge (docs/protocols.md "Cluster key"). */
import type { ClusterExchange } from '../cluster/peer-exchange.ts';
import type { LinkHandler } from '../server/link-server.ts';

export function clusterChallengeHandler(exchange: ClusterExchange): LinkHandler {
  return async () => ({ challenge: exchange.challenge() });
}
