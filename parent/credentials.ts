/**
 * AWS credentials for the enclave's KMS calls (DESIGN.md 1: safe for the parent to hold, because
 * KMS answers `Recipient` requests with data keys encrypted to the enclave's attested key). The
 * standard provider chain finds them — IMDSv2 role credentials on EC2, environment or profile
 * elsewhere — and they are pushed over the link after every (re)connect and again before they
 * expire. Never logged: only their expiry time is.
 */
import type { AwsCredentialIdentity, AwsCredentialIdentityProvider } from '@aws-sdk/types';
import type { EnclaveLink, LinkLog } from './link/enclave-link.ts';

/** Push this long before expiry (IMDS hands out new role credentials 5+ minutes before). */
export const REFRESH_BEFORE_EXPIRY_MS = 5 * 60_000;
/** Re-push static credentials this often, so an enclave restarted between reconnects has them. */
export const STATIC_REFRESH_MS = 15 * 60_000;
/** Retry a failed refresh after this long. */
export const RETRY_MS = 10_000;

/** Keeps the enclave supplied with fresh credentials. */
export class CredentialPusher {
  readonly #provider: AwsCredentialIdentityProvider;
  readonly #link: EnclaveLink;
  readonly #log: LinkLog;
  #timer: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(provider: AwsCredentialIdentityProvider, link: EnclaveLink, log: LinkLog) {
    this.#provider = provider;
    this.#link = link;
    this.#log = log;
    link.onConnect(async () => this.push({ internal: true }));
  }

  /** Fetches credentials and pushes them now; schedules the next push. */
  async push(options: { internal?: boolean } = {}): Promise<void> {
    clearTimeout(this.#timer);
    let credentials: AwsCredentialIdentity;
    try {
      credentials = await this.#provider();
      await this.#link.request(
        'credentials',
        {
          accessKeyId: credentials.accessKeyId,
          secretAccessKey: credentials.secretAccessKey,
          ...(credentials.sessionToken === undefined ? {} : { sessionToken: credentials.sessionToken }),
          ...(credentials.expiration === undefined ? {} : { expiration: credentials.expiration.getTime() }),
        },
        options.internal === true ? { internal: true } : {},
      );
    } catch (error) {
      this.#log('warn', 'credentials.push_failed', {
        code: (error as { code?: string }).code ?? (error as Error).name,
      });
      this.#schedule(RETRY_MS);
      throw error;
    }
    const expiresAt = credentials.expiration?.getTime();
    this.#log(
      'info',
      'credentials.pushed',
      expiresAt === undefined ? {} : { expiresAt: new Date(expiresAt).toISOString() },
    );
    this.#schedule(
      expiresAt === undefined
        ? STATIC_REFRESH_MS
        : Math.max(RETRY_MS, expiresAt - Date.now() - REFRESH_BEFORE_EXPIRY_MS),
    );
  }

  close(): void {
    this.#closed = true;
    clearTimeout(this.#timer);
  }

  #schedule(delayMs: number): void {
    if (this.#closed) return;
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => {
      if (this.#link.state === 'ready') this.push().catch(() => {});
      else this.#schedule(RETRY_MS);
    }, delayMs);
    this.#timer.unref();
  }
}
