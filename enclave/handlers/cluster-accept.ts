/**
 * `cluster.accept {document, enc, ciphertext}`: exchange step 4 on the requester — the only way a
 * cluster key from outside this enclave is installed (the KMS-blob `ohttp.key` message is gone).
 */
import { MAX_ATTESTATION_DOCUMENT_BYTES } from '../../shared/attestation/index.ts';
import { EXCHANGE_ENC_BYTES, MAX_SEALED_KEY_BYTES } from '../cluster/peer-exchange.ts';
import type { ClusterExchange } from '../cluster/peer-exchange.ts';
import type { LinkHandler, Log } from '../server/link-server.ts';
import { requiredBytes } from './fields.ts';

export function clusterAcceptHandler(exchange: ClusterExchange, log: Log): LinkHandler {
  return async (fields) => {
    const status = await exchange.accept({
      document: requiredBytes(fields, 'document', 1, MAX_ATTESTATION_DOCUMENT_BYTES),
      enc: requiredBytes(fields, 'enc', EXCHANGE_ENC_BYTES, EXCHANGE_ENC_BYTES),
      ciphertext: requiredBytes(fields, 'ciphertext', 1, MAX_SEALED_KEY_BYTES),
    });
    log('info', 'cluster.key_installed', { epoch: status.epoch });
    return { ...status };
  };
}
