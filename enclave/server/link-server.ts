/**
 * The enclave's side of the link (DESIGN.md 4.5): frames in, handlers run concurrently (many
 * requests in flight per connection), responses echo the request id. A well-formed request that is
 * wrong for its type gets an error response and the connection stays; a frame that breaks the codec
 * closes that connection with a logged reason and, first, an error frame (id 0) naming its code.
 * Nothing here ever takes the process down.
 *
 * Link limits (issue 10): at most {@link DEFAULT_MAX_CONNECTIONS} connections; a frame larger
 * than {@link SMALL_FRAME_BYTES} is buffered only once it fits a budget shared by every
 * connection (else its connection pauses until it does: the parent's uploads simply slow down);
 * and a frame must complete within {@link DEFAULT_INCOMPLETE_FRAME_TIMEOUT_MS} of its first byte
 * (or of being admitted), so a stalled sender cannot hold budget.
 */
import type { Socket } from 'node:net';
import { LinkError, isNitroInferError } from '../../shared/errors.ts';
import { FrameWriter } from '../../shared/frame-writer.ts';
import { FrameDecoder, MAX_FRAME_BYTES, encodeFrame } from '../../shared/frames.ts';
import type { Frame, FramePieces } from '../../shared/frames.ts';
import { LinkBudget } from './link-budget.ts';
import { LONG_POLLS, SERVED_WHILE_DRAINING, WorkTracker, endConnections, refuse } from './link-lifecycle.ts';

export { SERVED_WHILE_DRAINING } from './link-lifecycle.ts';

/** Per-connection state handlers may keep (e.g. uploads in progress). */
export interface Connection {
  readonly id: number;
  /** Called when the connection closes, for cleanup. */
  onClose(cleanup: () => void): void;
}

/** Handles one request type; returns the response fields. */
export type LinkHandler = (
  fields: ReadonlyMap<string, unknown>,
  connection: Connection,
) => Promise<Readonly<Record<string, unknown>>>;

/** Structured log lines; never given bodies, tensors, keys or credentials. */
export type Log = (
  level: 'info' | 'warn' | 'error',
  event: string,
  details?: Readonly<Record<string, string | number | boolean>>,
) => void;

/** Most requests one connection may have in flight before reading pauses (back-pressure). */
export const MAX_IN_FLIGHT_PER_CONNECTION = 256;

/** Most request bytes one connection may have in flight before reading pauses (16 model chunks of 1 MiB). */
export const MAX_IN_FLIGHT_BYTES_PER_CONNECTION = 16 * 1024 * 1024;

/** Connections at once: the parent opens a few (4 by default, enclave.connections); more are refused with ERR_LINK_OVERLOADED. */
export const DEFAULT_MAX_CONNECTIONS = 8;

/**
 * Bytes all connections may hold in large frames at once: one largest frame (64 MiB) beside two
 * 32 MiB OHTTP bodies, or a model stream (8 chunks of 1 MiB in flight) beside a 64 MiB frame.
 */
export const DEFAULT_MAX_BUFFERED_BYTES = 128 * 1024 * 1024;

/**
 * Frames up to this size need no share of the budget, so status and attest requests pass while
 * large frames wait: each connection holds at most one incomplete frame, so these add at most
 * 8 × 64 KiB beyond the budget (plus one socket read of up to 64 KiB each).
 */
export const SMALL_FRAME_BYTES = 64 * 1024;

/** A frame must complete within this time: 64 MiB at a slow 10 MB/s takes 7 s. */
export const DEFAULT_INCOMPLETE_FRAME_TIMEOUT_MS = 30_000;

/** Limits of a {@link LinkServer}; every one has a default. */
export interface LinkServerOptions {
  readonly maxConnections?: number;
  readonly maxBufferedBytes?: number;
  readonly maxFrameBytes?: number;
  readonly incompleteFrameTimeoutMs?: number;
}

/** Counters for metrics and tests. */
export interface LinkServerStats {
  readonly connections: number;
  /** Bytes reserved in the shared budget (large frames being received or handled). */
  readonly reservedBytes: number;
  /** Bytes the decoders hold for incomplete frames, over all connections. */
  readonly bufferedBytes: number;
  /** Connections paused until their next frame fits the budget. */
  readonly waitingConnections: number;
  readonly refusedConnections: number;
  readonly stalledFrames: number;
}

/** Serves the link protocol on accepted sockets. */
export class LinkServer {
  readonly #handlers: ReadonlyMap<string, LinkHandler>;
  readonly #log: Log;
  readonly #sockets = new Set<Socket>();
  readonly #decoders = new Set<FrameDecoder>();
  readonly #budget: LinkBudget;
  readonly #maxConnections: number;
  readonly #maxFrameBytes: number;
  readonly #timeoutMs: number;
  #nextConnectionId = 1;
  #refused = 0;
  #stalled = 0;
  #draining = false;
  readonly #work = new WorkTracker();

  constructor(handlers: ReadonlyMap<string, LinkHandler>, log: Log, options: LinkServerOptions = {}) {
    this.#handlers = handlers;
    this.#log = log;
    this.#maxConnections = options.maxConnections ?? DEFAULT_MAX_CONNECTIONS;
    this.#maxFrameBytes = options.maxFrameBytes ?? MAX_FRAME_BYTES;
    this.#budget = new LinkBudget(options.maxBufferedBytes ?? DEFAULT_MAX_BUFFERED_BYTES);
    this.#timeoutMs = options.incompleteFrameTimeoutMs ?? DEFAULT_INCOMPLETE_FRAME_TIMEOUT_MS;
  }

  /** Current counters. */
  get stats(): LinkServerStats {
    let bufferedBytes = 0;
    for (const decoder of this.#decoders) bufferedBytes += decoder.bufferedBytes;
    return {
      connections: this.#sockets.size,
      reservedBytes: this.#budget.used,
      bufferedBytes,
      waitingConnections: this.#budget.waiting,
      refusedConnections: this.#refused,
      stalledFrames: this.#stalled,
    };
  }

  /** Takes over an accepted socket. */
  accept(socket: Socket): void {
    if (this.#sockets.size >= this.#maxConnections) {
      this.#refused++;
      this.#log('warn', 'link.connection_refused', { connections: this.#sockets.size });
      refuse(
        socket,
        new LinkError(
          'ERR_LINK_OVERLOADED',
          `the enclave serves at most ${this.#maxConnections} link connections`,
        ),
      );
      return;
    }
    const connectionId = this.#nextConnectionId++;
    const cleanups: (() => void)[] = [];
    const connection: Connection = { id: connectionId, onClose: (cleanup) => cleanups.push(cleanup) };
    const writer = new FrameWriter(socket);
    // Reservations of admitted frames, in the order the decoder emits them (0 for small frames).
    const reservations: number[] = [];
    let granted: number | undefined; // a reservation the budget made while this connection waited
    let withdraw: (() => void) | undefined;
    let stallTimer: NodeJS.Timeout | undefined;
    let closing = false;
    let inFlight = 0;
    let inFlightBytes = 0;

    const admit = (frameBytes: number): boolean => {
      if (frameBytes <= SMALL_FRAME_BYTES) {
        reservations.push(0);
        return true;
      }
      if (frameBytes > this.#budget.limit)
        throw new LinkError('ERR_FRAME_TOO_LARGE', `frame of ${frameBytes} bytes exceeds the link budget`);
      if (granted !== undefined || this.#budget.tryReserve(frameBytes)) {
        granted = undefined;
        reservations.push(frameBytes);
        return true;
      }
      withdraw = this.#budget.wait(frameBytes, () => {
        withdraw = undefined;
        granted = frameBytes;
        updateFlow();
        onData(Buffer.alloc(0)); // resume decoding where admission stopped it
      });
      updateFlow();
      return false;
    };
    const decoder = new FrameDecoder({ maxFrameBytes: this.#maxFrameBytes, admit });
    const updateFlow = () => {
      const blocked =
        withdraw !== undefined ||
        inFlight >= MAX_IN_FLIGHT_PER_CONNECTION ||
        inFlightBytes >= MAX_IN_FLIGHT_BYTES_PER_CONNECTION;
      if (blocked) socket.pause();
      else if (socket.isPaused() && !closing) socket.resume();
      // The stall clock runs only while a frame is incomplete and this side is reading: time spent
      // paused by our own back-pressure (budget, in-flight limits) is not the sender's stall.
      if (blocked || closing || !decoder.inFrame) {
        clearTimeout(stallTimer);
        stallTimer = undefined;
      } else if (stallTimer === undefined) {
        stallTimer = setTimeout(() => {
          this.#stalled++;
          fail(new LinkError('ERR_FRAME_STALLED', `a frame stayed incomplete for ${this.#timeoutMs} ms`));
        }, this.#timeoutMs);
        stallTimer.unref();
      }
    };
    const fail = (error: unknown) => {
      const code = isNitroInferError(error) ? error.code : 'ERR_FRAME_MALFORMED';
      this.#log('warn', 'link.frame_rejected', {
        connection: connectionId,
        code,
        reason: (error as Error).message.slice(0, 200),
      });
      closing = true;
      clearTimeout(stallTimer);
      refuse(
        socket,
        isNitroInferError(error) ? error : new LinkError('ERR_FRAME_MALFORMED', 'malformed frame'),
      );
    };
    const onData = (chunk: Buffer) => {
      if (closing) return;
      let frames: Frame[];
      try {
        frames = decoder.push(chunk);
      } catch (error) {
        fail(error);
        return;
      }
      // Every completed frame restarts the stall clock (updateFlow below), so a steady stream of
      // frames never trips it.
      if (frames.length > 0) {
        clearTimeout(stallTimer);
        stallTimer = undefined;
      }
      for (const frame of frames) {
        const reserved = reservations.shift() ?? 0;
        inFlight++;
        inFlightBytes += frame.byteLength;
        void this.#dispatch(frame, connection, writer).finally(() => {
          inFlight--;
          inFlightBytes -= frame.byteLength;
          if (reserved > 0) this.#budget.release(reserved);
          updateFlow();
        });
      }
      updateFlow();
    };

    this.#sockets.add(socket);
    this.#decoders.add(decoder);
    socket.setNoDelay?.(true);
    this.#log('info', 'link.connected', { connection: connectionId });
    socket.on('data', onData);
    socket.on('error', (error) =>
      this.#log('warn', 'link.socket_error', {
        connection: connectionId,
        reason: error.message.slice(0, 200),
      }),
    );
    socket.on('close', () => {
      closing = true;
      clearTimeout(stallTimer);
      withdraw?.();
      if (granted !== undefined) this.#budget.release(granted);
      // Admitted frames that never completed: their bytes are dropped with the decoder.
      for (const reserved of reservations.splice(0)) if (reserved > 0) this.#budget.release(reserved);
      this.#sockets.delete(socket);
      this.#decoders.delete(decoder);
      for (const cleanup of cleanups) cleanup();
      this.#log('info', 'link.closed', { connection: connectionId });
    });
  }

  /** Requests being handled now, long polls excepted. */
  get working(): number {
    return this.#work.count;
  }

  /** Stops taking new work: from now on only {@link SERVED_WHILE_DRAINING} types are handled. */
  drain(): void {
    this.#draining = true;
  }

  /** Resolves once no request (long polls excepted) is being handled. */
  idle(): Promise<void> {
    return this.#work.idle();
  }

  /** Ends every connection once the answers already written have left (the end of a drain). */
  end(): Promise<void> {
    return endConnections(this.#sockets);
  }

  /** Closes every connection. */
  close(): void {
    for (const socket of this.#sockets) socket.destroy();
  }

  async #dispatch(frame: Frame, connection: Connection, writer: FrameWriter): Promise<void> {
    const counted = !LONG_POLLS.has(frame.type);
    if (counted) this.#work.begin();
    try {
      await this.#answer(frame, connection, writer);
    } finally {
      if (counted) this.#work.end();
    }
  }

  async #answer(frame: Frame, connection: Connection, writer: FrameWriter): Promise<void> {
    let response: FramePieces;
    try {
      const handler = this.#handlers.get(frame.type);
      if (handler === undefined)
        throw new LinkError('ERR_LINK_REQUEST_INVALID', `unknown request type ${frame.type}`);
      if (this.#draining && !SERVED_WHILE_DRAINING.has(frame.type))
        throw new LinkError('ERR_LINK_DRAINING', 'the enclave is shutting down and takes no new requests');
      response = encodeFrame(frame.id, 'ok', await handler(frame.fields, connection));
    } catch (error) {
      if (isNitroInferError(error)) {
        response = encodeFrame(frame.id, 'error', { code: error.code, message: error.message });
      } else {
        // Unexpected: log only the error's class (a message might quote request content) and tell
        // the parent only that it happened.
        this.#log('error', 'link.handler_failed', {
          type: frame.type,
          error: (error as Error)?.name ?? 'unknown',
        });
        response = encodeFrame(frame.id, 'error', { code: 'ERR_INTERNAL', message: 'internal error' });
      }
    }
    if (!writer.write(response)) await writer.drained();
  }
}
