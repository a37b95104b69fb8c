/**
 * One connection of the parent's link (DESIGN.md 4.5): its socket, its coalescing writer, the
 * requests waiting on it (matched by id) and its own reconnect loop with backoff. It knows nothing
 * of routing or of the connect hooks: {@link EnclaveLink} owns several and tells each when to try.
 *
 * Everything read here comes from the enclave over a stream the parent does not trust for secrecy;
 * this module never logs a field's value.
 */
import type { Socket } from 'node:net';
import { LinkError } from '../../shared/errors.ts';
import { FrameWriter } from '../../shared/frame-writer.ts';
import { RESPONSE_HEADER_LIMITS } from '../../shared/frame-layout.ts';
import { FrameDecoder } from '../../shared/frames.ts';
import type { FramePieces } from '../../shared/frames.ts';

/** Structured log sink (pino-compatible subset); never given field values. */
export type LinkLog = (
  level: 'info' | 'warn' | 'error',
  event: string,
  details?: Record<string, unknown>,
) => void;

/** A response's fields. */
export type LinkFields = ReadonlyMap<string, unknown>;

interface Pending {
  resolve(fields: LinkFields): void;
  reject(error: Error): void;
  timer: NodeJS.Timeout;
}

/** What a connection needs from the link that owns it. */
export interface LinkConnectionOptions {
  readonly index: number;
  readonly connect: () => Promise<Socket>;
  readonly backoff: { readonly initialMs: number; readonly maxMs: number };
  readonly log: LinkLog;
  /** The socket is up (not yet part of a ready link: the link decides). */
  readonly onOpen: (connection: LinkConnection) => void;
  /** The socket is gone; its pending requests have already failed. */
  readonly onLost: (connection: LinkConnection) => void;
  /** A settled frame: `error` frames become typed errors by the link's rules. */
  readonly toError: (fields: LinkFields) => Error;
}

/** One socket of the link, reconnecting on its own until {@link close}. */
export class LinkConnection {
  readonly index: number;
  readonly #options: LinkConnectionOptions;
  readonly #pending = new Map<number, Pending>();
  #socket: Socket | undefined;
  #writer: FrameWriter | undefined;
  #attempt = 0;
  #retryTimer: NodeJS.Timeout | undefined;
  #closed = false;
  /** Bumped on every new socket, so stale sockets' events are ignored and pinned channels notice. */
  #generation = 0;

  constructor(options: LinkConnectionOptions) {
    this.index = options.index;
    this.#options = options;
  }

  /** The socket is up and can carry requests. */
  get open(): boolean {
    return this.#writer !== undefined;
  }

  /** Which socket this is: a channel pinned to one socket compares it before every request. */
  get generation(): number {
    return this.#generation;
  }

  /** Requests waiting for an answer on this socket. */
  get inFlight(): number {
    return this.#pending.size;
  }

  /** The socket carries a ready link now: the next loss starts the backoff afresh. */
  resetBackoff(): void {
    this.#attempt = 0;
  }

  /** Sends one encoded frame and waits for the answer with the same id. */
  send(id: number, type: string, frame: FramePieces, timeoutMs: number): Promise<LinkFields> {
    const writer = this.#writer;
    if (writer === undefined) {
      return Promise.reject(new LinkError('ERR_LINK_UNAVAILABLE', 'the connection to the enclave is down'));
    }
    return new Promise<LinkFields>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(
          new LinkError('ERR_LINK_TIMEOUT', `the enclave did not answer ${type} within ${timeoutMs} ms`),
        );
      }, timeoutMs);
      timer.unref();
      this.#pending.set(id, { resolve, reject, timer });
      writer.write(frame);
    });
  }

  /** Resolves when the socket can take more bytes (for streaming uploads). */
  async drained(): Promise<void> {
    await this.#writer?.drained();
  }

  /** Opens the socket now (the first time) or after a backoff (every later time). */
  async connect(): Promise<void> {
    if (this.#closed) return;
    let socket: Socket;
    try {
      socket = await this.#options.connect();
    } catch (error) {
      this.#scheduleRetry((error as Error).message);
      return;
    }
    if (this.#closed) {
      socket.destroy();
      return;
    }
    const generation = ++this.#generation;
    this.#socket = socket;
    this.#writer = new FrameWriter(socket);
    socket.setNoDelay?.(true);
    // The enclave's answers (attest, status) have larger headers than the requests it reads. A
    // large response body stays in the socket chunks it arrived in: the OHTTP reply writes them.
    const decoder = new FrameDecoder({ ...RESPONSE_HEADER_LIMITS, payloadPieces: true });
    socket.on('data', (chunk: Buffer) => {
      try {
        for (const frame of decoder.push(chunk)) this.#settle(frame.id, frame.type, frame.fields);
      } catch (error) {
        this.#options.log('error', 'link.frame_rejected', {
          connection: this.index,
          reason: (error as Error).message.slice(0, 200),
        });
        socket.destroy();
      }
    });
    socket.on('error', () => {});
    socket.once('close', () => {
      if (generation !== this.#generation) return;
      this.#socket = undefined;
      this.#writer = undefined;
      this.#failPending(new LinkError('ERR_LINK_UNAVAILABLE', 'the connection to the enclave was lost'));
      this.#options.onLost(this);
      this.#scheduleRetry('connection closed');
    });
    this.#options.onOpen(this);
  }

  /** Drops the socket (it reconnects with backoff unless closed). */
  drop(): void {
    this.#socket?.destroy();
  }

  /** Stops reconnecting, fails pending requests and closes the socket. */
  close(error: Error): void {
    this.#closed = true;
    clearTimeout(this.#retryTimer);
    this.#failPending(error);
    this.#socket?.destroy();
  }

  #scheduleRetry(reason: string): void {
    if (this.#closed) return;
    const { initialMs, maxMs } = this.#options.backoff;
    // Full jitter (AWS Architecture Blog, "Exponential Backoff And Jitter"): replicas that lost the
    // same enclave, and the connections of one replica, do not reconnect in lock-step.
    const ceiling = Math.min(maxMs, initialMs * 2 ** Math.min(this.#attempt, 20));
    const delay = Math.max(initialMs, Math.round(Math.random() * ceiling));
    this.#attempt += 1;
    if (this.#attempt === 1 || this.#attempt % 10 === 0) {
      this.#options.log('warn', 'link.retrying', {
        connection: this.index,
        attempt: this.#attempt,
        delayMs: delay,
        reason: reason.slice(0, 200),
      });
    }
    clearTimeout(this.#retryTimer);
    this.#retryTimer = setTimeout(() => void this.connect(), delay);
    this.#retryTimer.unref();
  }

  #settle(id: number, type: string, fields: LinkFields): void {
    if (id === 0 && type === 'error') {
      // The enclave closes this connection and says why first: too many connections (more than its
      // link.maxConnections) or a frame it refused. Only the code is logged, never a field's value.
      const code = fields.get('code');
      this.#options.log('warn', 'link.closed_by_enclave', {
        connection: this.index,
        code: typeof code === 'string' ? code.slice(0, 64) : 'unknown',
      });
      return;
    }
    const pending = this.#pending.get(id);
    if (pending === undefined) return; // timed out earlier (or id 0, a codec error): dropped
    this.#pending.delete(id);
    clearTimeout(pending.timer);
    if (type === 'error') pending.reject(this.#options.toError(fields));
    else pending.resolve(fields);
  }

  #failPending(error: Error): void {
    for (const [id, pending] of this.#pending) {
      clearTimeout(pending.timer);
      this.#pending.delete(id);
      pending.reject(error);
    }
  }
}
