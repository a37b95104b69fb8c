/**
 * `Decrypt` with the enclave's attestation (DESIGN.md 4.6): KMS checks the document against the key
 * policy's `kms:RecipientAttestation:*` conditions and wraps the data key to the RSA key the
 * document carries; only this enclave can unwrap it. Plaintext data keys never leave this process.
 */
import type { KMS } from '@aws-sdk/client-kms';
import { KmsError, isNitroInferError } from '../../shared/errors.ts';
import type { EnclaveKeys } from '../keys.ts';
import type { Nsm } from '../nsm/index.ts';
import { openCmsEnvelope } from './cms.ts';

/** A `Decrypt` request as the Encryption SDK's keyring makes it. */
export interface DecryptRequest {
  readonly KeyId?: string;
  readonly CiphertextBlob: Uint8Array;
  readonly EncryptionContext?: Record<string, string>;
  readonly GrantTokens?: string[];
}

/** Options of {@link AttestedKms}. */
export interface AttestedKmsOptions {
  readonly client: KMS;
  readonly nsm: Nsm;
  readonly keys: EnclaveKeys;
  /** The current `user_data` binding (DESIGN.md 4.3). */
  readonly userData: () => Uint8Array;
}

/** KMS calls that carry this enclave's attestation. */
export class AttestedKms {
  readonly #options: AttestedKmsOptions;

  constructor(options: AttestedKmsOptions) {
    this.#options = options;
  }

  /**
   * Decrypts a data key with `Recipient` and returns `{ KeyId, Plaintext }` in the shape the
   * Encryption SDK's KMS keyring expects from a client.
   * @throws {KmsError} `ERR_KMS_ACCESS_DENIED`, `ERR_KMS_INVALID_CIPHERTEXT`, `ERR_KMS_NOT_FOUND`,
   *   `ERR_KMS_NO_CREDENTIALS`, `ERR_KMS_UNAVAILABLE`, `ERR_CMS_MALFORMED` or `ERR_DECRYPT_FAILED`.
   */
  async decrypt(request: DecryptRequest): Promise<{ KeyId: string; Plaintext: Uint8Array }> {
    const { client, nsm, keys, userData } = this.#options;
    const document = await nsm.attest({ publicKey: keys.kmsRecipient.publicKeySpki, userData: userData() });
    let response;
    try {
      response = await client.decrypt({
        CiphertextBlob: request.CiphertextBlob,
        ...(request.KeyId === undefined ? {} : { KeyId: request.KeyId }),
        ...(request.EncryptionContext === undefined ? {} : { EncryptionContext: request.EncryptionContext }),
        ...(request.GrantTokens === undefined ? {} : { GrantTokens: request.GrantTokens }),
        Recipient: { KeyEncryptionAlgorithm: 'RSAES_OAEP_SHA_256', AttestationDocument: document },
      });
    } catch (error) {
      throw kmsError(error);
    }
    // KMS must not return the plaintext when a Recipient was given; if it does, something is wrong.
    if (
      response.Plaintext !== undefined ||
      response.CiphertextForRecipient === undefined ||
      response.KeyId === undefined
    ) {
      throw new KmsError(
        'ERR_KMS_UNAVAILABLE',
        'KMS answered a Recipient request without CiphertextForRecipient',
      );
    }
    return {
      KeyId: response.KeyId,
      Plaintext: openCmsEnvelope(response.CiphertextForRecipient, keys.kmsRecipient.privateKey),
    };
  }
}

/** Maps an SDK error to a typed error; AWS's message is kept (it names keys and actions, never data). */
export function kmsError(error: unknown): KmsError {
  if (isNitroInferError(error) && error.code.startsWith('ERR_KMS_')) return error as KmsError;
  const cause = (error as { cause?: unknown }).cause;
  if (isNitroInferError(cause) && cause.code.startsWith('ERR_KMS_')) return cause as KmsError;
  const name = (error as { name?: unknown }).name;
  const message = String((error as { message?: unknown }).message ?? 'KMS request failed').slice(0, 300);
  switch (name) {
    case 'AccessDeniedException':
      return new KmsError('ERR_KMS_ACCESS_DENIED', message);
    case 'InvalidCiphertextException':
    case 'IncorrectKeyException':
      return new KmsError('ERR_KMS_INVALID_CIPHERTEXT', message || 'KMS could not decrypt the ciphertext');
    case 'NotFoundException':
      return new KmsError('ERR_KMS_NOT_FOUND', message);
    default:
      return new KmsError('ERR_KMS_UNAVAILABLE', `KMS request failed: ${name ?? 'error'}: ${message}`, {
        cause: error,
      });
  }
}
