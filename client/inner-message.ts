/**
 * The SDK's side of the inner (Binary HTTP) messages: requests padded to the size buckets, and the
 * enclave's answers read as JSON or as the typed error it sent inside the encryption.
 */
import { ClientError, ERROR_CODES, NitroInferError } from '../shared/errors.ts';
import type { ErrorCode } from '../shared/errors.ts';
import type { BhttpResponse } from '../shared/ohttp/bhttp.ts';
import { paddedLength } from '../shared/ohttp/padding.ts';

const KNOWN_CODES: ReadonlySet<string> = new Set(ERROR_CODES);

/** The message with Binary HTTP zero padding (RFC 9292 section 3.8) up to its size bucket. */
export function padded(message: Uint8Array): Uint8Array {
  const length = paddedLength(message.byteLength);
  if (length === message.byteLength) return message;
  const out = new Uint8Array(length);
  out.set(message);
  return out;
}

export function parseJson(response: BhttpResponse): unknown {
  try {
    return JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(response.content));
  } catch {
    throw new ClientError(
      'ERR_CLIENT_REQUEST_FAILED',
      'the enclave answered with something that is not JSON',
    );
  }
}

/** An error the enclave answered with inside the encryption. */
export function innerError(response: BhttpResponse): NitroInferError {
  try {
    const body = JSON.parse(new TextDecoder().decode(response.content)) as { code?: string; error?: string };
    if (typeof body.code === 'string' && KNOWN_CODES.has(body.code)) {
      return new NitroInferError(body.code as ErrorCode, String(body.error ?? '').slice(0, 300));
    }
  } catch {
    // fall through
  }
  return new ClientError('ERR_CLIENT_REQUEST_FAILED', `the enclave answered ${response.status}`);
}
