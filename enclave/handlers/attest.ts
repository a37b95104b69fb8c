/**
 * `attest`: a fresh NSM document binding the KMS recipient key (`public_key`) and, in `user_data`,
 * the OHTTP key config, the receipt key and the model list (DESIGN.md 4.3), with the verifier's
 * nonce. The key config, receipt key and list travel beside it; the client checks them against
 * `user_data`.
 */
import type { ModelIdentity } from '../../shared/binding.ts';
import type { OhttpKeys } from '../gateway/ohttp-keys.ts';
import type { EnclaveKeys } from '../keys.ts';
import type { Nsm } from '../nsm/index.ts';
import type { LinkHandler } from '../server/link-server.ts';
import { optionalBytes } from './fields.ts';

/** Nonces a verifier sends: 16–64 bytes (DESIGN.md 4.1). */
export const MIN_NONCE_BYTES = 16;
export const MAX_NONCE_BYTES = 64;

export interface AttestDependencies {
  readonly nsm: Nsm;
  readonly keys: EnclaveKeys;
  readonly ohttpKeys: OhttpKeys;
  readonly models: () => ModelIdentity[];
  readonly userData: () => Uint8Array;
}

export function attestHandler(dependencies: AttestDependencies): LinkHandler {
  return async (fields) => {
    const nonce = optionalBytes(fields, 'nonce', MIN_NONCE_BYTES, MAX_NONCE_BYTES);
    const document = await dependencies.nsm.attest({
      publicKey: dependencies.keys.kmsRecipient.publicKeySpki,
      userData: dependencies.userData(),
      ...(nonce === undefined ? {} : { nonce }),
    });
    return {
      document,
      keyConfig: dependencies.ohttpKeys.keyConfig,
      receiptKey: dependencies.ohttpKeys.receipts.publicKeyRaw,
      models: dependencies.models(),
    };
  };
}
