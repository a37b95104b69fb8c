/**
 * The link server's connection lifecycle outside the frame flow: refusing a connection with one
 * error frame, and draining (SIGTERM) — which request types a draining enclave still answers, the
 * count of requests a drain waits for, and ending connections without losing the last answers.
 */
import type { Socket } from 'node:net';
import { encodeFrame } from '../../shared/frames.ts';
import type { LinkError } from '../../shared/errors.ts';

/**
 * Requests a draining enclave still answers: status, telemetry and the parent's watch (an operator
 * watches the drain), credentials, and the rest of uploads already under way. Everything else is new work and gets
 * ERR_LINK_DRAINING.
 */
export const SERVED_WHILE_DRAINING: ReadonlySet<string> = new Set([
  'status',
  'telemetry.poll',
  'models.watch',
  'credentials',
  'model.chunk',
  'model.end',
  'model.abort',
]);

/** Long polls the parent keeps open (handlers/models-watch.ts): a drain does not wait for them. */
export const LONG_POLLS: ReadonlySet<string> = new Set(['models.watch']);

/** Requests being handled, and who waits for there to be none. */
export class WorkTracker {
  #count = 0;
  #idle: (() => void)[] = [];

  get count(): number {
    return this.#count;
  }

  begin(): void {
    this.#count++;
  }

  end(): void {
    if (--this.#count === 0) for (const resolve of this.#idle.splice(0)) resolve();
  }

  idle(): Promise<void> {
    if (this.#count === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idle.push(resolve));
  }
}

/**
 * Ends every socket after the answers already written have left (frame writers coalesce on the
 * next turn of the event loop, so wait one first); a socket that does not close within
 * {@link REFUSAL_GRACE_MS} is destroyed.
 */
export async function endConnections(sockets: Iterable<Socket>): Promise<void> {
  await new Promise((resolve) => setImmediate(resolve));
  await Promise.all(
    [...sockets].map(
      (socket) =>
        new Promise<void>((resolve) => {
          if (socket.destroyed) return resolve();
          socket.once('close', () => resolve());
          socket.end();
          setTimeout(() => socket.destroy(), REFUSAL_GRACE_MS).unref();
        }),
    ),
  );
}

/** How long a refused connection may take to read its error frame before it is destroyed. */
export const REFUSAL_GRACE_MS = 1_000;

/** Stops reading, sends one error frame (id 0) naming the code, and closes the connection. */
export function refuse(socket: Socket, error: LinkError | { code: string; message: string }): void {
  socket.pause();
  socket.removeAllListeners('data');
  if (socket.destroyed) return;
  socket.on('error', () => {});
  const [head] = encodeFrame(0, 'error', { code: error.code, message: error.message.slice(0, 200) });
  socket.end(head);
  socket.once('finish', () => socket.destroy());
  setTimeout(() => socket.destroy(), REFUSAL_GRACE_MS).unref();
}
