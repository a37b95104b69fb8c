/**
 * AWS credentials inside the enclave. The enclave has no IMDS and no network: the parent pushes
 * its role credentials in `credentials` link messages before they expire, and the KMS client asks
 * this store on every request, so a push takes effect at once (see {@link SDK_REREAD_EXPIRATION_MS}
 * for why the SDK really does ask every time). Never logged.
 */
import { KmsError } from '../../shared/errors.ts';

/** Credentials as the AWS SDK takes them. */
export interface AwsCredentials {
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
  readonly sessionToken?: string;
  readonly expiration?: Date;
}

/** Credentials are refused this long before they expire, so no request starts with a dying token. */
export const CREDENTIALS_EXPIRY_MARGIN_MS = 60_000;

/**
 * The `expiration` the SDK is shown on every identity this store hands out. The AWS SDK wraps a
 * credential provider in `memoizeIdentityProvider` (@smithy/core): an identity without an
 * `expiration` is cached for the life of the client, and one with an expiration is reused until
 * five minutes before it. Either way a later push would be ignored — one wrong push and every load
 * failed until the enclave restarted. An identity that is already expired makes the SDK call the
 * provider again on every request; reading this store is a few property reads. The real expiry is
 * checked by the provider itself, against the injected clock.
 */
export const SDK_REREAD_EXPIRATION_MS = 0;

/** The latest credentials the parent pushed. */
export class CredentialStore {
  #current: AwsCredentials | undefined;
  readonly #clock: () => number;

  constructor(clock: () => number = Date.now) {
    this.#clock = clock;
  }

  /** Replaces the credentials. Validates shapes; never echoes values in errors. */
  set(credentials: AwsCredentials): void {
    const { accessKeyId, secretAccessKey, sessionToken, expiration } = credentials;
    if (
      !/^[A-Z0-9]{16,128}$/.test(accessKeyId) ||
      secretAccessKey.length < 16 ||
      secretAccessKey.length > 256
    ) {
      throw new KmsError('ERR_KMS_NO_CREDENTIALS', 'credentials from the parent are not well-formed');
    }
    if (sessionToken !== undefined && sessionToken.length > 8192) {
      throw new KmsError('ERR_KMS_NO_CREDENTIALS', 'session token from the parent is too long');
    }
    this.#current = {
      accessKeyId,
      secretAccessKey,
      ...(sessionToken === undefined ? {} : { sessionToken }),
      ...(expiration === undefined ? {} : { expiration }),
    };
  }

  /**
   * The SDK's credential provider: current credentials, or a typed error. What it returns always
   * carries {@link SDK_REREAD_EXPIRATION_MS}, so the SDK asks again on the next request.
   */
  readonly provider = async (): Promise<AwsCredentials> => {
    const current = this.#current;
    if (current === undefined)
      throw new KmsError('ERR_KMS_NO_CREDENTIALS', 'no AWS credentials have been received from the parent');
    if (
      current.expiration !== undefined &&
      current.expiration.getTime() - CREDENTIALS_EXPIRY_MARGIN_MS < this.#clock()
    ) {
      throw new KmsError('ERR_KMS_NO_CREDENTIALS', 'the AWS credentials from the parent have expired');
    }
    return { ...current, expiration: new Date(SDK_REREAD_EXPIRATION_MS) };
  };
}
