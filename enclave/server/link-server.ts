/**
 * The enclave's side of the link (DESIGN.md 4.5): frames in, handlers run concurrently (many
 * requests in flight per connection), responses echo the request id. A well-formed request that is
 * wrong for its type gets an error response and the connection stays; a frame that breaks the codec
 * closes that connection with a logged reason. Nothing here ever takes the process down.
 */
import type { Socket } from 'node:net';
import { LinkError, isNitroInferError } from '../../shared/errors.ts';
import { FrameWriter } from '../../shared/frame-writer.ts';
import { FrameDecoder, encodeFrame } from '../../shared/frames.ts';
import type { Frame, FramePieces } from '../../shared/frames.ts';

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

/** Serves the link protocol on accepted sockets. */
export class LinkServer {
  readonly #handlers: ReadonlyMap<string, LinkHandler>;
  readonly #log: Log;
  readonly #sockets = new Set<Socket>();
  #nextConnectionId = 1;

  constructor(handlers: ReadonlyMap<string, LinkHandler>, log: Log) {
    this.#handlers = handlers;
    this.#log = log;
  }

  /** Takes over an accepted socket. */
  accept(socket: Socket): void {
    const connectionId = this.#nextConnectionId++;
    const cleanups: (() => void)[] = [];
    const connection: Connection = { id: connectionId, onClose: (cleanup) => cleanups.push(cleanup) };
    const decoder = new FrameDecoder();
    const writer = new FrameWriter(socket);
    let inFlight = 0;
    let inFlightBytes = 0;
    const saturated = () =>
      inFlight >= MAX_IN_FLIGHT_PER_CONNECTION || inFlightBytes >= MAX_IN_FLIGHT_BYTES_PER_CONNECTION;
    this.#sockets.add(socket);
    socket.setNoDelay?.(true);
    this.#log('info', 'link.connected', { connection: connectionId });

    socket.on('data', (chunk: Buffer) => {
      let frames: Frame[];
      try {
        frames = decoder.push(chunk);
      } catch (error) {
        const code = isNitroInferError(error) ? error.code : 'ERR_FRAME_MALFORMED';
        this.#log('warn', 'link.frame_rejected', {
          connection: connectionId,
          code,
          reason: (error as Error).message.slice(0, 200),
        });
        socket.destroy();
        return;
      }
      for (const frame of frames) {
        inFlight++;
        inFlightBytes += frame.byteLength;
        if (saturated()) socket.pause();
        void this.#dispatch(frame, connection, writer).finally(() => {
          inFlight--;
          inFlightBytes -= frame.byteLength;
          if (!saturated() && socket.isPaused()) socket.resume();
        });
      }
    });
    socket.on('error', (error) =>
      this.#log('warn', 'link.socket_error', {
        connection: connectionId,
        reason: error.message.slice(0, 200),
      }),
    );
    socket.on('close', () => {
      this.#sockets.delete(socket);
      for (const cleanup of cleanups) cleanup();
      this.#log('info', 'link.closed', { connection: connectionId });
    });
  }

  /** Closes every connection. */
  close(): void {
    for (const socket of this.#sockets) socket.destroy();
  }

  async #dispatch(frame: Frame, connection: Connection, writer: FrameWriter): Promise<void> {
    let response: FramePieces;
    try {
      const handler = this.#handlers.get(frame.type);
      if (handler === undefined)
        throw new LinkError('ERR_LINK_REQUEST_INVALID', `unknown request type ${frame.type}`);
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
