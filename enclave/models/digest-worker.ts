/**
 * SHA-384 of a model's plaintext on another core while the Encryption SDK decrypts on this one
 * (issue 11 item 4). Serially the two cost 1/800 + 1/552 s per MB here (≈ 330 MB/s); overlapped, the
 * slower one alone (bench/unseal.bench.ts measures both ways).
 *
 * Each decrypted chunk is moved to the worker (transferred when it owns its memory, else copied
 * once into a buffer that is), hashed there and zeroed there. At most {@link MAX_QUEUED_BYTES} wait
 * in the worker's queue: beyond that `update` resolves only once the worker has caught up, so the
 * decrypt stream slows down instead of a second copy of the model piling up in memory.
 *
 * The worker's source is inline plain JavaScript (no bundling, part of the measured image) and it
 * never logs or posts anything but byte counts and the final digest.
 */
import { Worker } from 'node:worker_threads';
import { ModelError } from '../../shared/errors.ts';

/** Plaintext bytes queued for the worker before the decrypt side waits. */
export const MAX_QUEUED_BYTES = 8 * 1024 * 1024;

/** The worker reports progress every this many bytes. */
const ACK_BYTES = 1024 * 1024;

const SOURCE = `
const { parentPort } = require('node:worker_threads');
const { createHash } = require('node:crypto');
const hash = createHash('sha384');
let unacknowledged = 0;
parentPort.on('message', (message) => {
  if (message === 'digest') {
    parentPort.postMessage({ hashed: unacknowledged, digest: hash.digest() });
    return;
  }
  const bytes = new Uint8Array(message);
  hash.update(bytes);
  bytes.fill(0);
  // Acknowledged per MiB, not per chunk: the sender only needs to know the queue stays short.
  unacknowledged += bytes.byteLength;
  if (unacknowledged >= ${ACK_BYTES}) {
    parentPort.postMessage({ hashed: unacknowledged });
    unacknowledged = 0;
  }
});
`;

/** A running SHA-384 in a worker thread; one per unseal. */
export class DigestWorker {
  readonly #worker: Worker;
  #queued = 0;
  #waiter: (() => void) | undefined;
  #digest: ((digest: Buffer) => void) | undefined;
  #failure: Error | undefined;
  #onFailure: ((error: Error) => void) | undefined;

  constructor() {
    this.#worker = new Worker(SOURCE, { eval: true, stdout: true, stderr: true });
    this.#worker.unref();
    this.#worker.on('message', (message: { hashed?: number; digest?: Uint8Array }) => {
      this.#queued -= message.hashed ?? 0;
      if (message.digest !== undefined) {
        this.#digest?.(Buffer.from(message.digest));
        return;
      }
      if (this.#queued <= MAX_QUEUED_BYTES / 2) this.#release();
    });
    const fail = () => {
      this.#failure ??= new ModelError('ERR_MODEL_LOAD_FAILED', 'the digest worker stopped');
      this.#onFailure?.(this.#failure);
      this.#release();
    };
    this.#worker.once('error', fail);
    this.#worker.once('exit', fail);
  }

  /**
   * Hands one chunk to the worker; `chunk` is detached or zeroed when this returns. Resolves at
   * once unless the worker is more than {@link MAX_QUEUED_BYTES} behind.
   */
  async update(chunk: Uint8Array): Promise<void> {
    if (this.#failure !== undefined) throw this.#failure;
    const owned = chunk.byteOffset === 0 && chunk.byteLength === chunk.buffer.byteLength;
    let moved: ArrayBuffer;
    if (owned && chunk.buffer instanceof ArrayBuffer) {
      moved = chunk.buffer;
    } else {
      // A view into a larger (pooled) buffer: transferring would take its neighbours too.
      moved = new ArrayBuffer(chunk.byteLength);
      new Uint8Array(moved).set(chunk);
      chunk.fill(0);
    }
    try {
      this.#worker.postMessage(moved, [moved]);
    } catch {
      // Node refuses to transfer some buffers it owns (marked untransferable): copy those instead.
      const copy = new ArrayBuffer(chunk.byteLength);
      new Uint8Array(copy).set(chunk);
      chunk.fill(0);
      moved = copy;
      this.#worker.postMessage(moved, [moved]);
    }
    this.#queued += moved.byteLength;
    if (this.#queued > MAX_QUEUED_BYTES) {
      await new Promise<void>((resolve) => (this.#waiter = resolve));
      if (this.#failure !== undefined) throw this.#failure;
    }
  }

  /** The digest of everything given to {@link update}; the worker exits afterwards. */
  async digest(): Promise<Buffer> {
    if (this.#failure !== undefined) throw this.#failure;
    const digest = await new Promise<Buffer>((resolve, reject) => {
      this.#digest = resolve;
      this.#onFailure = reject;
      this.#worker.postMessage('digest');
    });
    await this.close();
    return digest;
  }

  /** Stops the worker (what it still queues is freed with its heap). */
  async close(): Promise<void> {
    this.#failure ??= new ModelError('ERR_MODEL_LOAD_FAILED', 'the digest worker was closed');
    this.#onFailure = undefined;
    await this.#worker.terminate();
  }

  #release(): void {
    const waiter = this.#waiter;
    this.#waiter = undefined;
    waiter?.();
  }
}
