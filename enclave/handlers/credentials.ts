/**
 * `credentials`: the parent pushes the instance role's temporary credentials for the enclave's
 * attested KMS calls (DESIGN.md 4.6). They are bounded here and never logged.
 */
import type { CredentialStore } from '../kms/credentials.ts';
import type { LinkHandler } from '../server/link-server.ts';
import { invalidRequest, requiredString } from './fields.ts';

export function credentialsHandler(credentials: CredentialStore): LinkHandler {
  return async (fields) => {
    const expiration = fields.get('expiration');
    // A safe integer can still lie outside what a Date holds (±8.64e15 ms): such a Date is
    // invalid, and credentials with it would never count as expired.
    if (
      expiration !== undefined &&
      (typeof expiration !== 'number' ||
        !Number.isSafeInteger(expiration) ||
        expiration < 0 ||
        Number.isNaN(new Date(expiration).getTime()))
    ) {
      throw invalidRequest('credentials.expiration must be epoch milliseconds');
    }
    const sessionToken = fields.get('sessionToken');
    credentials.set({
      accessKeyId: requiredString(fields, 'accessKeyId', 128),
      secretAccessKey: requiredString(fields, 'secretAccessKey', 256),
      ...(sessionToken === undefined ? {} : { sessionToken: requiredString(fields, 'sessionToken', 8192) }),
      ...(expiration === undefined ? {} : { expiration: new Date(expiration as number) }),
    });
    return {};
  };
}
