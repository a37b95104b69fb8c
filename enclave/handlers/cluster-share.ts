/** `cluster.share {document}`: exchange step 3 on the holder — the cluster key sealed to a verified peer's exchange key. */
import { MAX_ATTESTATION_DOCUMENT_BYTES } from '../../shared/attestation/index.ts';
import type { ClusterExchange } from '../cluster/peer-exchange.ts';
import type { LinkHandler, Log } from '../server/link-server.ts';
import { requiredBytes } from './fields.ts';

export function clusterShareHandler(exchange: ClusterExchange, log: Log): LinkHandler {
  return async (fields) => {
    const shared = await exchange.share(requiredBytes(fields, 'document', 1, MAX_ATTESTATION_DOCUMENT_BYTES));
    log('info', 'cluster.key_shared', {});
    return { ...shared };
  };
}
