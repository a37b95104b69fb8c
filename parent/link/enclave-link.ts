/**
 * The parent's side of the link (DESIGN.md 4.5; docs/protocols.md, "Link connections"): a few
 * connections to the enclave, each carrying many requests at once (matched by id), bounded in
 * flight, each request with a timeout. Lanes, so that no kind of transfer queues behind another:
 * connection 0 carries model uploads (a sustained stream, paced by the enclave's unsealing);
 * connection 1 carries frames over {@link LARGE_FRAME_BYTES} (32 MiB OHTTP bodies); the rest carry
 * small requests, each to the one with the fewest waiting. With two connections large and small
 * requests share connection 1; with one, everything shares it. A lane that is down lends its
 * traffic to the least busy open connection.
 *
 * The link is ready while at least one connection is up and the `onConnect` hooks (credentials,
 * model reloads) have run since the enclave was last reachable at all. A connection that drops
 * fails only its own pending requests and reconnects on its own with exponential backoff; the
 * others keep serving, and it rejoins without rerunning the hooks (the enclave is one process:
 * while any connection survives, its state does). When the last one drops, the link is
 * `connecting` again and the hooks run once more on the next connection up.
 *
 * The parent treats everything it receives here as opaque or as plain status: it has no key that
 * could open an inference body, and this module never logs a field's value.
 */
import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import { ERROR_CODES, LinkError, NitroInferError } from '../../shared/errors.ts';
import type { ErrorCode } from '../../shared/errors.ts';
import { MAX_FRAME_ID, encodeFrame } from '../../shared/frames.ts';
import { LinkConnection } from './link-connection.ts';
import type { LinkFields, LinkLog } from './link-connection.ts';

export type { LinkFields, LinkLog } from './link-connection.ts';

/** Link states, as `/v2/health/ready` and `/metrics` report them. */
export type LinkState = 'connecting' | 'syncing' | 'ready' | 'closed';

/** Options of {@link EnclaveLink}. */
export interface EnclaveLinkOptions {
  /** Opens a fresh connection to the enclave (vsock in production, Unix socket in simulation). */
  readonly connect: () => Promise<Socket>;
  /** Connections to keep open (1 – {@link MAX_LINK_CONNECTIONS}); {@link DEFAULT_LINK_CONNECTIONS} when absent. */
  readonly connections?: number;
  /** Default per-request timeout. */
  readonly requestTimeoutMs?: number;
  /** Requests in flight (all connections together) before new ones are refused with ERR_LINK_OVERLOADED. */
  readonly maxInFlight?: number;
  readonly backoff?: { readonly initialMs: number; readonly maxMs: number };
  readonly log?: LinkLog;
}

/** Runs after the link (re)connects, before it is ready; a failure drops the connections and retries. */
export type ConnectHook = (link: EnclaveLink) => Promise<void>;

/** Per-request options. */
export interface LinkRequestOptions {
  readonly timeoutMs?: number;
  /** The connect hooks' own requests, which may run while the link is syncing. */
  readonly internal?: boolean;
}

/** Requests pinned to one connection: an upload's frames must all reach the same enclave-side state. */
export interface LinkChannel {
  request(
    type: string,
    fields?: Readonly<Record<string, unknown>>,
    options?: LinkRequestOptions,
  ): Promise<LinkFields>;
  /** Resolves when the pinned connection can take more bytes. */
  drained(): Promise<void>;
}

export const DEFAULT_REQUEST_TIMEOUT_MS = 30_000;
/** Matches the enclave's own per-connection limit (MAX_IN_FLIGHT_PER_CONNECTION) times four: the
 * enclave pauses reading at 256, the socket buffers the rest; beyond this callers get a fast 503. */
export const DEFAULT_MAX_IN_FLIGHT = 1024;
/** An upload lane, a large-frame lane and two lanes for small requests. */
export const DEFAULT_LINK_CONNECTIONS = 4;
/** The enclave's default connection limit (enclave/server/link-server.ts DEFAULT_MAX_CONNECTIONS). */
export const MAX_LINK_CONNECTIONS = 8;
/**
 * Frames above this go to the bulk lane. The enclave's small-frame bound (SMALL_FRAME_BYTES): frames
 * up to it never wait for its shared budget, so a request lane never pauses behind a large frame.
 */
export const LARGE_FRAME_BYTES = 64 * 1024;

const KNOWN_CODES: ReadonlySet<string> = new Set(ERROR_CODES);

/** A multiplexed, reconnecting link client. Emits `state` with the new {@link LinkState}. */
export class EnclaveLink extends EventEmitter {
  readonly #requestTimeoutMs: number;
  readonly #maxInFlight: number;
  readonly #log: LinkLog;
  readonly #hooks: ConnectHook[] = [];
  readonly #connections: readonly LinkConnection[];
  #state: LinkState = 'connecting';
  #nextId = 1;
  #reconnects = 0;
  #readyCount = 0;
  #syncing = false;
  /** Bumped whenever the last connection drops: a sync begun before then proves nothing now. */
  #epoch = 0;

  constructor(options: EnclaveLinkOptions) {
    super();
    const count = options.connections ?? DEFAULT_LINK_CONNECTIONS;
    if (!Number.isInteger(count) || count < 1 || count > MAX_LINK_CONNECTIONS)
      throw new RangeError(`link connections must be an integer from 1 to ${MAX_LINK_CONNECTIONS}`);
    this.#requestTimeoutMs = options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
    this.#maxInFlight = options.maxInFlight ?? DEFAULT_MAX_IN_FLIGHT;
    this.#log = options.log ?? (() => {});
    const backoff = options.backoff ?? { initialMs: 100, maxMs: 5_000 };
    this.#connections = Array.from(
      { length: count },
      (_, index) =>
        new LinkConnection({
          index,
          connect: options.connect,
          backoff,
          log: this.#log,
          onOpen: (connection) => this.#opened(connection),
          onLost: (connection) => this.#lost(connection),
          toError: remoteError,
        }),
    );
  }

  /** Current state. */
  get state(): LinkState {
    return this.#state;
  }

  /** Requests waiting for an answer, on every connection. */
  get inFlight(): number {
    let total = 0;
    for (const connection of this.#connections) total += connection.inFlight;
    return total;
  }

  /** Connections up now, of {@link connectionCount}. */
  get openConnections(): number {
    return this.#connections.filter((connection) => connection.open).length;
  }

  /** Connections the link keeps. */
  get connectionCount(): number {
    return this.#connections.length;
  }

  /** Times the link became ready again after every connection had dropped. */
  get reconnects(): number {
    return this.#reconnects;
  }

  /** Adds a hook that runs after every (re)connect, in order, before the link is ready. */
  onConnect(hook: ConnectHook): void {
    this.#hooks.push(hook);
  }

  /** Starts connecting (and keeps reconnecting until {@link close}). */
  start(): void {
    for (const connection of this.#connections) void connection.connect();
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
   * error, ERR_LINK_TIMEOUT, ERR_LINK_UNAVAILABLE or ERR_LINK_OVERLOADED.
   */
  request(
    type: string,
    fields: Readonly<Record<string, unknown>> = {},
    options: LinkRequestOptions = {},
  ): Promise<LinkFields> {
    return this.#send(undefined, type, fields, options);
  }

  /**
   * A channel whose requests all go over one connection: the upload lane when it is up, else the
   * least busy one. If that connection drops, the channel's requests fail with ERR_LINK_UNAVAILABLE
   * (they never move to another connection, where the enclave would not know their upload).
   */
  pin(): LinkChannel {
    const connection = this.#bulkLane();
    const generation = connection?.generation;
    return {
      request: (type, fields = {}, options = {}) =>
        connection === undefined || connection.generation !== generation || !connection.open
          ? Promise.reject(unavailable('the connection the upload started on was lost'))
          : this.#send(connection, type, fields, options),
      drained: async () => {
        if (connection?.generation === generation) await connection?.drained();
      },
    };
  }

  /** Stops reconnecting, fails pending requests and closes every connection. */
  close(): void {
    this.#setState('closed');
    for (const connection of this.#connections) connection.close(unavailable('the link is closed'));
  }

  #send(
    pinned: LinkConnection | undefined,
    type: string,
    fields: Readonly<Record<string, unknown>>,
    options: LinkRequestOptions,
  ): Promise<LinkFields> {
    const usable = this.#state === 'ready' || (options.internal === true && this.#state === 'syncing');
    if (!usable || (pinned === undefined && this.openConnections === 0)) {
      return Promise.reject(unavailable(`the enclave link is ${this.#state}`));
    }
    const inFlight = this.inFlight;
    if (inFlight >= this.#maxInFlight) {
      return Promise.reject(
        new LinkError('ERR_LINK_OVERLOADED', `${inFlight} requests are already waiting for the enclave`),
      );
    }
    const id = this.#nextId;
    this.#nextId = this.#nextId >= MAX_FRAME_ID ? 1 : this.#nextId + 1;
    const frame = encodeFrame(id, type, fields);
    let frameBytes = 0;
    for (const piece of frame) frameBytes += piece.byteLength;
    const connection = pinned ?? (frameBytes > LARGE_FRAME_BYTES ? this.#largeLane() : this.#smallLane());
    if (connection === undefined) return Promise.reject(unavailable(`the enclave link is ${this.#state}`));
    return connection.send(id, type, frame, options.timeoutMs ?? this.#requestTimeoutMs);
  }

  /** Uploads: connection 0 when it is up, else the least busy open one. */
  #bulkLane(): LinkConnection | undefined {
    return openOr(this.#connections[0], this.#connections);
  }

  /** Large frames: connection 1 (0 when alone), else the least busy open one. */
  #largeLane(): LinkConnection | undefined {
    return openOr(this.#connections[Math.min(1, this.#connections.length - 1)], this.#connections);
  }

  /** Small requests: the least busy of connections 2…, of connection 1 when there are only two. */
  #smallLane(): LinkConnection | undefined {
    const lanes = this.#connections.slice(Math.min(2, this.#connections.length - 1));
    return leastBusy(lanes) ?? leastBusy(this.#connections);
  }

  #opened(connection: LinkConnection): void {
    if (this.#closed()) return;
    if (this.#state === 'ready') {
      connection.resetBackoff();
      this.#log('info', 'link.connection_ready', { connection: connection.index });
      return;
    }
    if (!this.#syncing) void this.#sync();
  }

  #lost(connection: LinkConnection): void {
    if (this.#closed()) return;
    if (this.openConnections > 0) {
      this.#log('warn', 'link.connection_lost', { connection: connection.index });
      return;
    }
    this.#epoch += 1;
    this.#log('warn', 'link.disconnected', {});
    this.#setState('connecting');
  }

  /** Runs the connect hooks over the open connections, then reports the link ready. */
  async #sync(): Promise<void> {
    this.#syncing = true;
    const epoch = this.#epoch;
    this.#setState('syncing');
    let failed = false;
    try {
      for (const hook of this.#hooks) await hook(this);
    } catch (error) {
      failed = true;
      if (epoch === this.#epoch && !this.#closed()) {
        this.#log('warn', 'link.sync_failed', { code: codeOf(error) });
        // As with one connection: drop and retry with backoff, every connection alike.
        for (const connection of this.#connections) connection.drop();
      }
    } finally {
      this.#syncing = false;
    }
    if (this.#closed()) return;
    if (epoch !== this.#epoch) {
      // Every connection dropped during the sync: whatever it set up may be gone with the enclave.
      if (this.openConnections > 0) void this.#sync();
      return;
    }
    if (failed || this.openConnections === 0) return;
    if (this.#readyCount++ > 0) this.#reconnects += 1;
    for (const connection of this.#connections) if (connection.open) connection.resetBackoff();
    this.#log('info', 'link.ready', { reconnects: this.#reconnects, connections: this.openConnections });
    this.#setState('ready');
  }

  /** A method, not a property read, so TypeScript does not narrow it across awaits. */
  #closed(): boolean {
    return this.#state === 'closed';
  }

  #setState(state: LinkState): void {
    if (this.#state === state) return;
    if (this.#state === 'closed') return;
    this.#state = state;
    this.emit('state', state);
  }
}

function openOr(
  preferred: LinkConnection | undefined,
  connections: readonly LinkConnection[],
): LinkConnection | undefined {
  return preferred?.open === true ? preferred : leastBusy(connections);
}

/** The open connection with the fewest requests waiting (the lowest index on a tie). */
function leastBusy(connections: readonly LinkConnection[]): LinkConnection | undefined {
  let best: LinkConnection | undefined;
  for (const connection of connections) {
    if (connection.open && (best === undefined || connection.inFlight < best.inFlight)) best = connection;
  }
  return best;
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
