/**
 * Bearer tokens for the admin routes: from AWS Secrets Manager in production, from a file in
 * simulation (DESIGN.md 4.1: never an environment variable in production). Only SHA-256 digests are
 * kept, and a presented token is compared with every digest in constant time.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { GetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { ConfigError } from '../shared/errors.ts';

/** Shortest token accepted: 128 bits of base64 or hex. */
export const MIN_TOKEN_LENGTH = 22;
const MAX_TOKEN_LENGTH = 512;

export class AdminTokens {
  readonly #digests: readonly Buffer[];

  private constructor(tokens: readonly string[]) {
    this.#digests = tokens.map((token) => createHash('sha256').update(token).digest());
  }

  /** Parses `{"tokens": ["…"]}`, a JSON string, or one token per line. */
  static parse(text: string, where: string): AdminTokens {
    let tokens: unknown;
    const trimmed = text.trim();
    try {
      const parsed: unknown =
        trimmed.startsWith('{') || trimmed.startsWith('"') ? JSON.parse(trimmed) : undefined;
      tokens =
        typeof parsed === 'string'
          ? [parsed]
          : parsed === undefined
            ? trimmed
                .split(/\r?\n/)
                .map((line) => line.trim())
                .filter((line) => line.length > 0)
            : (parsed as { tokens?: unknown }).tokens;
    } catch {
      throw new ConfigError('ERR_CONFIG_INVALID', `${where}: admin tokens are not valid JSON`);
    }
    if (!Array.isArray(tokens) || tokens.length === 0) {
      throw new ConfigError('ERR_CONFIG_INVALID', `${where}: no admin tokens (expected {"tokens": ["…"]})`);
    }
    for (const token of tokens) {
      if (
        typeof token !== 'string' ||
        token.length < MIN_TOKEN_LENGTH ||
        token.length > MAX_TOKEN_LENGTH ||
        /\s/.test(token)
      ) {
        throw new ConfigError(
          'ERR_CONFIG_INVALID',
          `${where}: every admin token must be ${MIN_TOKEN_LENGTH}–${MAX_TOKEN_LENGTH} characters without spaces`,
        );
      }
    }
    return new AdminTokens(tokens as string[]);
  }

  static async fromFile(path: string): Promise<AdminTokens> {
    let text: string;
    try {
      text = await readFile(path, 'utf8');
    } catch (error) {
      throw new ConfigError(
        'ERR_CONFIG_INVALID',
        `admin tokens file ${path}: ${(error as NodeJS.ErrnoException).code ?? 'unreadable'}`,
      );
    }
    return AdminTokens.parse(text, `admin tokens file ${path}`);
  }

  static async fromSecretsManager(secretId: string, region: string, endpoint?: string): Promise<AdminTokens> {
    const client = new SecretsManagerClient({ region, ...(endpoint === undefined ? {} : { endpoint }) });
    try {
      const secret = await client.send(new GetSecretValueCommand({ SecretId: secretId }));
      if (secret.SecretString === undefined) throw new Error('the secret has no SecretString');
      return AdminTokens.parse(secret.SecretString, `secret ${secretId}`);
    } catch (error) {
      if ((error as { code?: string }).code === 'ERR_CONFIG_INVALID') throw error;
      throw new ConfigError(
        'ERR_CONFIG_INVALID',
        `admin tokens secret ${secretId}: ${(error as Error).name}`,
      );
    } finally {
      client.destroy();
    }
  }

  /** True when `authorization` is `Bearer <one of the tokens>`. */
  verify(authorization: string | undefined): boolean {
    if (authorization === undefined || !authorization.startsWith('Bearer ')) return false;
    const presented = createHash('sha256').update(authorization.slice('Bearer '.length)).digest();
    let match = false;
    for (const digest of this.#digests) match = timingSafeEqual(digest, presented) || match;
    return match;
  }
}
