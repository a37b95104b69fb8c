/** `cluster.request {challenge}`: exchange step 2 on the requester — a document binding a fresh exchange key. */
import type { ClusterExchange } from '../cluster/peer-exchange.ts';
import { CLUSTER_NONCE_BYTES } from '../cluster/nonce-store.ts';
import type { LinkHandler } from '../server/link-server.ts';
import { requiredBytes } from './fields.ts';

export function clusterRequestHandler(exchange: ClusterExchange): LinkHandler {
  return async (fields) => ({
    document: await exchange.request(
      requiredBytes(fields, 'challenge', CLUSTER_NONCE_BYTES, CLUSTER_NONCE_BYTES),
    ),
  });
}
