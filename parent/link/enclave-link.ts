/**
 * The parent's side of the link (DESIGN.md 4.5): one connection to the enclave carrying many
 * requests at once (matched by id), bounded in flight, each with a timeout. When the connection
 * drops — the enclave restarted, the socket broke — every pending request fails at once with
 * ERR_LINK_UNAVAILABLE and the link reconnects with exponential backoff. `onConnect` hooks
 * (credentials, model reloads) run before the link reports itself ready again.
 *
 * The parent treats everything it receives here as opaque or as plain status: it has no key that
 * could open an inference body, and this module never logs a field's value.
 */
import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import { ERROR_CODES, LinkError, NitroInferError } from '../../shared/errors.ts';
import type { ErrorCode } from '../../shared/errors.ts';
import { FrameWriter } from '../../shared/frame-writer.ts';
import { RESPONSE_HEADER_LIMITS } from '../../shared/frame-layout.ts';
import { FrameDecoder, MAX_FRAME_ID, encodeFrame } from '../../shared/frames.ts';

/** Link states, as `/v2/health/ready` and `/metrics` report them. */
export type LinkState = 'connecting' | 'syncing' | 'ready' | 'closed';

/** Structured log sink (pino-compatible subset); never given field values. */
export type LinkLog = (
  level: 'info' | 'warn' | 'error',
  event: string,
  details?: Record<string, unknown>,
) => void;

/** Options of {@link EnclaveLink}. */
export interface EnclaveLinkOptions {
  /** Opens a fresh connection to the enclave (vsock in production, Unix socket in simulation). */
  readonly connect: () => Promise<Socket>;
  /** Default per-request timeout. */
  readonly requestTimeoutMs?: number;
  /** Requests in flight before new ones are refused with ERR_LINK_OVERLOADED. */
  readonly maxInFlight?: number;
  readonly backoff?: { readonly initialMs: number; readonly maxMs: number };
  readonly log?: LinkLog;
}

/** A response's fields. */
export type LinkFields = ReadonlyMap<string, unknown>;

/** Runs after each (re)connect, before the link is ready; a failure drops the connection and retries. */
export type ConnectHook = (link: EnclaveLink) => Promise<void>;

interface Pending {
  resolve(fields: LinkFields): void;
  reject(error: Error): void;
  timer: NodeJS.Timeout;
}

export const DEFAULT_REQUEST_TIMEOUT_MS = 30_000;
/** Matches the enclave's own per-connection limit (MAX_IN_FLIGHT_PER_CONNECTION) times four: the
 * enclave pauses reading at 256, the socket buffers the rest; beyond this callers get a fast 503. */
export const DEFAULT_MAX_IN_FLIGHT = 1024;

const KNOWN_CODES: ReadonlySet<string> = new Set(ERROR_CODES);

/** A multiplexed, reconnecting link client. Emits `state` with the new {@link LinkState}. */
export class EnclaveLink extends EventEmitter {
  readonly #options: Required<Omit<EnclaveLinkOptions, 'log'>> & { log: LinkLog };
  readonly #hooks: ConnectHook[] = [];
  readonly #pending = new Map<number, Pending>();
  #socket: Socket | undefined;
  #writer: FrameWriter | undefined;
  #state: LinkState = 'connecting';
  #nextId = 1;
  #attempt = 0;
  #retryTimer: NodeJS.Timeout | undefined;
  #reconnects = 0;
  #readyCount = 0;
  /** Bumped on every new connection, so stale sockets' events are ignored. */
  #generation = 0;

  constructor(options: EnclaveLinkOptions) {
    super();
    this.#options = {
      connect: options.connect,
      requestTimeoutMs: options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS,
      maxInFlight: options.maxInFlight ?? DEFAULT_MAX_IN_FLIGHT,
      backoff: options.backoff ?? { initialMs: 100, maxMs: 5_000 },
      log: options.log ?? (() => {}),
    };
  }

  /** Current state. */
  get state(): LinkState {
    return this.#state;
  }

  /** Requests waiting for an answer. */
  get inFlight(): number {
    return this.#pending.size;
  }

  /** Connections made after the first. */
  get reconnects(): number {
    return this.#reconnects;
  }

  /** Adds a hook that runs after every (re)connect, in order, before the link is ready. */
  onConnect(hook: ConnectHook): void {
    this.#hooks.push(hook);
  }

  /** Starts connecting (and keeps reconnecting until {@link close}). */
  start(): void {
    void this.#connect();
  }

  /** Resolves when the link is ready (or rejects when it closes first). */
  async ready(): Promise<void> {
    if (this.#state === 'ready') return;
    await new Promise<void>((resolve, reject) => {
      const listener = (state: LinkState) => {
        if (state === 'ready' || state === 'closed') {
          this.off('state', listener);
          if (state === 'ready') resolve();
          else reject(unavailable('the link is closed'));
        }
      };
      this.on('state', listener);
    });
  }

  /**
   * Sends one request. Resolves with the response's fields; rejects with the enclave's own typed
   * error, ERR_LINK_TIMEOUT, ERR_LINK_UNAVAILABLE or ERR_LINK_OVERLOADED. `internal` requests (the
   * connect hooks' own) may run while the link is syncing.
   */
  request(
    type: string,
    fields: Readonly<Record<string, unknown>> = {},
    options: { timeoutMs?: number; internal?: boolean } = {},
  ): Promise<LinkFields> {
    const usable = this.#state === 'ready' || (options.internal === true && this.#state === 'syncing');
    if (!usable || this.#writer === undefined) {
      return Promise.reject(unavailable(`the enclave link is ${this.#state}`));
    }
    if (this.#pending.size >= this.#options.maxInFlight) {
      return Promise.reject(
        new LinkError(
          'ERR_LINK_OVERLOADED',
          `${this.#pending.size} requests are already waiting for the enclave`,
        ),
      );
    }
    const id = this.#nextId;
    this.#nextId = this.#nextId >= MAX_FRAME_ID ? 1 : this.#nextId + 1;
    const frame = encodeFrame(id, type, fields);
    const timeoutMs = options.timeoutMs ?? this.#options.requestTimeoutMs;
    return new Promise<LinkFields>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(
          new LinkError('ERR_LINK_TIMEOUT', `the enclave did not answer ${type} within ${timeoutMs} ms`),
        );
      }, timeoutMs);
      timer.unref();
      this.#pending.set(id, { resolve, reject, timer });
      this.#writer?.write(frame);
    });
  }

  /** Resolves when the connection can take more bytes (for streaming uploads). */
  async drained(): Promise<void> {
    await this.#writer?.drained();
  }

  /** Stops reconnecting, fails pending requests and closes the connection. */
  close(): void {
    this.#setState('closed');
    clearTimeout(this.#retryTimer);
    this.#failPending(unavailable('the link is closed'));
    this.#socket?.destroy();
  }

  async #connect(): Promise<void> {
    if (this.#state === 'closed') return;
    this.#setState('connecting');
    let socket: Socket;
    try {
      socket = await this.#options.connect();
    } catch (error) {
      this.#scheduleRetry((error as Error).message);
      return;
    }
    if (this.#closed()) {
      socket.destroy();
      return;
    }
    const generation = ++this.#generation;
    this.#socket = socket;
    this.#writer = new FrameWriter(socket);
    socket.setNoDelay?.(true);
    // The enclave's answers (attest, status) have larger headers than the requests it reads.
    const decoder = new FrameDecoder(RESPONSE_HEADER_LIMITS);
    socket.on('data', (chunk: Buffer) => {
      try {
        for (const frame of decoder.push(chunk)) this.#settle(frame.id, frame.type, frame.fields);
      } catch (error) {
        this.#options.log('error', 'link.frame_rejected', { reason: (error as Error).message.slice(0, 200) });
        socket.destroy();
      }
    });
    socket.on('error', () => {});
    socket.once('close', () => {
      if (generation !== this.#generation) return;
      this.#socket = undefined;
      this.#writer = undefined;
      this.#failPending(unavailable('the connection to the enclave was lost'));
      if (!this.#closed()) {
        this.#options.log('warn', 'link.disconnected', {});
        this.#scheduleRetry('connection closed');
      }
    });

    this.#setState('syncing');
    try {
      for (const hook of this.#hooks) await hook(this);
    } catch (error) {
      if (generation !== this.#generation || this.#closed()) return;
      this.#options.log('warn', 'link.sync_failed', { code: codeOf(error) });
      socket.destroy();
      return;
    }
    if (generation !== this.#generation || this.#closed() || socket.destroyed) return;
    if (this.#readyCount++ > 0) this.#reconnects += 1;
    this.#attempt = 0;
    this.#options.log('info', 'link.ready', { reconnects: this.#reconnects });
    this.#setState('ready');
  }

  /** A method, not a property read, so TypeScript does not narrow it across awaits. */
  #closed(): boolean {
    return this.#state === 'closed';
  }

  #scheduleRetry(reason: string): void {
    if (this.#state === 'closed') return;
    this.#setState('connecting');
    const { initialMs, maxMs } = this.#options.backoff;
    // Full jitter (AWS Architecture Blog, "Exponential Backoff And Jitter"): replicas that lost the
    // same enclave do not reconnect in lock-step.
    const ceiling = Math.min(maxMs, initialMs * 2 ** Math.min(this.#attempt, 20));
    const delay = Math.max(initialMs, Math.round(Math.random() * ceiling));
    this.#attempt += 1;
    if (this.#attempt === 1 || this.#attempt % 10 === 0) {
      this.#options.log('warn', 'link.retrying', {
        attempt: this.#attempt,
        delayMs: delay,
        reason: reason.slice(0, 200),
      });
    }
    clearTimeout(this.#retryTimer);
    this.#retryTimer = setTimeout(() => void this.#connect(), delay);
    this.#retryTimer.unref();
  }

  #settle(id: number, type: string, fields: LinkFields): void {
    const pending = this.#pending.get(id);
    if (pending === undefined) return; // timed out earlier; the late answer is dropped
    this.#pending.delete(id);
    clearTimeout(pending.timer);
    if (type === 'error') pending.reject(remoteError(fields));
    else pending.resolve(fields);
  }

  #failPending(error: Error): void {
    for (const [id, pending] of this.#pending) {
      clearTimeout(pending.timer);
      this.#pending.delete(id);
      pending.reject(error);
    }
  }

  #setState(state: LinkState): void {
    if (this.#state === state) return;
    if (this.#state === 'closed') return;
    this.#state = state;
    this.emit('state', state);
  }
}

/** An error the enclave answered with; its code is kept when it is one of ours. */
function remoteError(fields: LinkFields): NitroInferError {
  const code = fields.get('code');
  const message = fields.get('message');
  const known = typeof code === 'string' && KNOWN_CODES.has(code);
  return new NitroInferError(
    known ? (code as ErrorCode) : 'ERR_INTERNAL',
    typeof message === 'string' ? message.slice(0, 500) : 'the enclave reported an error',
  );
}

function unavailable(message: string): LinkError {
  return new LinkError('ERR_LINK_UNAVAILABLE', message);
}

function codeOf(error: unknown): string {
  const code = (error as { code?: unknown })?.code;
  return typeof code === 'string' ? code : 'ERR_INTERNAL';
}
