/**
 * The SDK's HTTP to the parent: deadlines and cancellation, network failures as typed errors,
 * bounded body reads, and what the parent's error replies mean. Nothing here is trusted: the parent
 * writes every byte outside the encryption, so an answer read here can at most make the SDK give up
 * or re-attest, never accept something.
 */
import { ClientError, ERROR_CODES, NitroInferError, isNitroInferError } from '../shared/errors.ts';
import type { ErrorCode } from '../shared/errors.ts';
import { OHTTP_KEY_PROBLEM_TYPE, PROBLEM_JSON_TYPE } from '../shared/ohttp/key-config.ts';

/** Options every call takes, and the client as defaults. */
export interface CallOptions {
  /**
   * Give up after this many milliseconds with `ERR_CLIENT_TIMEOUT`: the whole call, attestation,
   * request and reading the answer included. A per-call value replaces the client's.
   */
  readonly timeoutMs?: number;
  /** Give up when this fires, with `ERR_CLIENT_ABORTED`. The client's and the call's both apply. */
  readonly signal?: AbortSignal;
}

/** Longest a response body read from the parent may be. */
export const MAX_RESPONSE_BYTES = 34 * 1024 * 1024;
/** Longest problem document the SDK reads; the ohttp-key problem is about 150 bytes. */
const MAX_PROBLEM_BYTES = 4096;
/** setTimeout's limit; a larger deadline would fire at once. */
const MAX_TIMEOUT_MS = 2 ** 31 - 1;
const KNOWN_CODES: ReadonlySet<string> = new Set(ERROR_CODES);

/**
 * Checks `timeoutMs` and `signal` where they are given, so that a typo fails at once and not as a
 * call that never ends. @throws {ClientError} `ERR_CLIENT_OPTIONS_INVALID`.
 */
export function checkCallOptions(options: CallOptions | undefined, where: string): void {
  if (options === undefined) return;
  const { timeoutMs, signal } = options;
  if (
    timeoutMs !== undefined &&
    (typeof timeoutMs !== 'number' ||
      !Number.isFinite(timeoutMs) ||
      timeoutMs <= 0 ||
      timeoutMs > MAX_TIMEOUT_MS)
  ) {
    throw new ClientError(
      'ERR_CLIENT_OPTIONS_INVALID',
      `${where}.timeoutMs must be a number of milliseconds from 1 to ${MAX_TIMEOUT_MS}`,
    );
  }
  if (signal !== undefined && !(signal instanceof AbortSignal)) {
    throw new ClientError('ERR_CLIENT_OPTIONS_INVALID', `${where}.signal must be an AbortSignal`);
  }
}

/**
 * One call's deadline and cancellation: a signal for the transport, and the typed error that says which of
 * them ended the call.
 */
export class CallContext {
  readonly signal: AbortSignal | undefined;
  readonly #timeout: AbortSignal | undefined;
  readonly #timeoutMs: number | undefined;
  readonly #cancellers: readonly AbortSignal[];

  constructor(timeoutMs: number | undefined, signals: readonly (AbortSignal | undefined)[]) {
    this.#timeoutMs = timeoutMs;
    this.#timeout = timeoutMs === undefined ? undefined : AbortSignal.timeout(timeoutMs);
    this.#cancellers = signals.filter((signal): signal is AbortSignal => signal !== undefined);
    const all = [...this.#cancellers, ...(this.#timeout === undefined ? [] : [this.#timeout])];
    this.signal = all.length === 0 ? undefined : all.length === 1 ? all[0] : AbortSignal.any(all);
  }

  /** The typed error for an ended call, or undefined while it runs. */
  ended(): ClientError | undefined {
    // A caller's abort wins over a deadline that passed at the same moment: it is what they asked.
    if (this.#cancellers.some((signal) => signal.aborted)) {
      return new ClientError('ERR_CLIENT_ABORTED', 'the call was aborted by its AbortSignal');
    }
    if (this.#timeout?.aborted === true) {
      return new ClientError('ERR_CLIENT_TIMEOUT', `the call did not finish within ${this.#timeoutMs} ms`);
    }
    return undefined;
  }

  /** Throws the typed error when the call has ended (between steps that do not watch the signal). */
  check(): void {
    const ended = this.ended();
    if (ended !== undefined) throw ended;
  }

  /** Waits for `promise` (which this call does not own) until the call ends. */
  async race<T>(promise: Promise<T>): Promise<T> {
    const signal = this.signal;
    if (signal === undefined) return promise;
    this.check();
    let onAbort: (() => void) | undefined;
    const ended = new Promise<never>((_resolve, reject) => {
      onAbort = () => reject(this.ended() ?? new ClientError('ERR_CLIENT_ABORTED', 'the call was aborted'));
      signal.addEventListener('abort', onAbort, { once: true });
    });
    try {
      return await Promise.race([promise, ended]);
    } finally {
      signal.removeEventListener('abort', onAbort!);
    }
  }

  /**
   * What a failure while sending or reading a body means: our own errors stay, a fired signal is
   * a timeout or an abort, and anything else the transport rejects with is the network's: the
   * endpoint could not be reached (refused, reset, DNS, TLS).
   */
  failure(error: unknown, url: string): NitroInferError {
    if (isNitroInferError(error)) return error;
    const ended = this.ended();
    if (ended !== undefined) return ended;
    return unreachable(error, url);
  }
}

/** What the SDK reads of an HTTP answer: the status, header values, and the bounded body. */
export interface Reply {
  readonly status: number;
  /** A header's value (lower-case name), repeated fields joined with ", " as fetch does; null when absent. */
  header(name: string): string | null;
  readonly bytes: Uint8Array;
}

/** One HTTP request as the SDK sends it. */
export interface Outgoing {
  readonly method: 'GET' | 'POST';
  readonly headers?: Readonly<Record<string, string>>;
  readonly body?: Uint8Array;
}

/**
 * How the SDK speaks HTTP under a call's deadline: the exchange ends with the call's signal,
 * network failures are `ERR_CLIENT_UNREACHABLE`, and no body over MAX_RESPONSE_BYTES is buffered.
 */
export interface Transport {
  send(url: string, request: Outgoing, context: CallContext): Promise<Reply>;
  /** Lets go of kept-alive connections. */
  close(): void;
}

/** The transport over a `fetch` (a caller's own, e.g. the proxy's `--ca-bundle` one). */
export function fetchTransport(fetchImpl: typeof fetch): Transport {
  return {
    async send(url, request, context) {
      context.check();
      try {
        const reply = await fetchImpl(url, {
          method: request.method,
          ...(request.headers === undefined ? {} : { headers: request.headers }),
          ...(request.body === undefined ? {} : { body: request.body }),
          ...(context.signal === undefined ? {} : { signal: context.signal }),
        });
        const bytes = await readBody(reply);
        return { status: reply.status, header: (name) => reply.headers.get(name), bytes };
      } catch (error) {
        throw context.failure(error, url);
      }
    },
    close() {},
  };
}

function unreachable(error: unknown, url: string): ClientError {
  // undici: TypeError('fetch failed', { cause }) with the system or TLS code on the cause;
  // node:http: the system or TLS error itself.
  const cause = (error as { cause?: unknown }).cause ?? error;
  const code = (cause as { code?: unknown }).code;
  let origin = url;
  try {
    origin = new URL(url).origin;
  } catch {
    // an unparsable URL is shown as given
  }
  const reason = typeof code === 'string' && /^[A-Z0-9_]{2,64}$/.test(code) ? code : 'network error';
  return new ClientError('ERR_CLIENT_UNREACHABLE', `cannot reach ${origin} (${reason})`, { cause: error });
}

/** Reads a response body, refusing more than MAX_RESPONSE_BYTES as it streams in (chunked replies too). */
export async function readBody(reply: Response): Promise<Uint8Array> {
  const tooLarge = () => new ClientError('ERR_CLIENT_REQUEST_FAILED', 'the response is too large');
  if (Number(reply.headers.get('content-length') ?? '0') > MAX_RESPONSE_BYTES) throw tooLarge();
  if (reply.body === null) return new Uint8Array(0);
  const parts: Uint8Array[] = [];
  let total = 0;
  for await (const part of reply.body as unknown as AsyncIterable<Uint8Array>) {
    total += part.byteLength;
    if (total > MAX_RESPONSE_BYTES) {
      await reply.body.cancel().catch(() => {});
      throw tooLarge();
    }
    parts.push(part);
  }
  return new Uint8Array(Buffer.concat(parts, total));
}

/**
 * True for RFC 9458 section 5.3's `ohttp-key` problem: a 4xx whose media type is
 * `application/problem+json` and whose `type` is the registered URI. Nothing else (a bare 400, our
 * `{error}` body with any code) counts: re-attesting is the SDK's answer to this one signal only.
 */
export function isOhttpKeyProblem(reply: Reply): boolean {
  const { bytes } = reply;
  if (reply.status < 400 || reply.status > 499 || bytes.byteLength > MAX_PROBLEM_BYTES) return false;
  const mediaType = reply.header('content-type')?.split(';')[0]?.trim().toLowerCase();
  if (mediaType !== PROBLEM_JSON_TYPE) return false;
  try {
    const problem = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes)) as unknown;
    return (
      typeof problem === 'object' &&
      problem !== null &&
      (problem as { type?: unknown }).type === OHTTP_KEY_PROBLEM_TYPE
    );
  } catch {
    return false;
  }
}

/** An error the parent answered with (before decryption): its code when it is one of ours. */
export function outerError(status: number, bytes: Uint8Array): NitroInferError {
  try {
    const code = (
      JSON.parse(Buffer.from(bytes).toString('utf8')) as { error?: { code?: string; message?: string } }
    ).error;
    if (typeof code?.code === 'string' && KNOWN_CODES.has(code.code)) {
      return new NitroInferError(
        code.code as ErrorCode,
        `${status}: ${String(code.message ?? '').slice(0, 300)}`,
      );
    }
  } catch {
    // fall through
  }
  return new ClientError('ERR_CLIENT_REQUEST_FAILED', `the parent answered HTTP ${status}`);
}
