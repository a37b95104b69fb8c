/**
 * SHA-384 of a model's plaintext on another core while the Encryption SDK decrypts on this one
 * (issue 11 item 4). Serially the two cost 1/800 + 1/552 s per MB here (≈ 330 MB/s); overlapped, the
 * slower one alone (bench/unseal.bench.ts measures both ways).
 *
 * Each decrypted chunk is moved to the worker (transferred when it owns its memory, else copied
 * once into a buffer that is), hashed there and zeroed there — also when the unseal fails: chunks
 * still queued are then zeroed unhashed before the worker is stopped (its heap is not wiped). At most {@link MAX_QUEUED_BYTES} wait
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

/** How long {@link DigestWorker.close} waits for the worker to zero what it still queues. */
export const CLOSE_TIMEOUT_MS = 5000;

/** The worker reports progress every this many bytes. */
const ACK_BYTES = 1024 * 1024;

const SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const { createHash } = require('node:crypto');
const hash = createHash('sha384');
// Set by the sender when it gives up: chunks still queued are then zeroed without being hashed.
const abandoned = new Int32Array(workerData);
let failed = false;
let unacknowledged = 0;
parentPort.on('message', (message) => {
  if (message === 'digest') {
    parentPort.postMessage({ hashed: unacknowledged, digest: hash.digest() });
    return;
  }
  if (message === 'close') {
    // Every chunk sent before 'close' has been zeroed by now (messages arrive in order).
    parentPort.postMessage({ closed: true });
    return;
  }
  const bytes = message instanceof Uint8Array ? message : new Uint8Array(message);
  try {
    if (!failed && Atomics.load(abandoned, 0) === 0) hash.update(bytes);
  } catch {
    failed = true;
    parentPort.postMessage({ failed: true });
  } finally {
    bytes.fill(0);
  }
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
  /** `[0]` becomes 1 when the sender gives up (the worker zeroes what is queued, unhashed). */
  readonly #abandoned = new Int32Array(new SharedArrayBuffer(4));
  #queued = 0;
  /** Everything sent has been hashed and zeroed (after the digest), or the worker is gone. */
  #drained = false;
  #waiter: (() => void) | undefined;
  #digest: ((digest: Buffer) => void) | undefined;
  #closed: (() => void) | undefined;
  #failure: Error | undefined;
  #onFailure: ((error: Error) => void) | undefined;

  constructor() {
    this.#worker = new Worker(SOURCE, {
      eval: true,
      stdout: true,
      stderr: true,
      workerData: this.#abandoned.buffer,
    });
    this.#worker.unref();
    const fail = () => {
      this.#failure ??= new ModelError('ERR_MODEL_LOAD_FAILED', 'the digest worker stopped');
      this.#onFailure?.(this.#failure);
      this.#release();
    };
    this.#worker.on(
      'message',
      (message: { hashed?: number; digest?: Uint8Array; closed?: true; failed?: true }) => {
        if (message.closed === true) {
          this.#closed?.();
          return;
        }
        if (message.failed === true) {
          fail();
          return;
        }
        this.#queued -= message.hashed ?? 0;
        if (message.digest !== undefined) {
          this.#drained = true;
          this.#digest?.(Buffer.from(message.digest));
          return;
        }
        if (this.#queued <= MAX_QUEUED_BYTES / 2) this.#release();
      },
    );
    this.#worker.once('error', fail);
    this.#worker.once('exit', () => {
      // Its heap, and what it still queued, is gone: there is nothing left to zero or wait for.
      this.#drained = true;
      this.#closed?.();
      fail();
    });
  }

  /**
   * Hands one chunk to the worker; `chunk` is detached or zeroed when this returns (a chunk in
   * shared memory is zeroed by the worker once hashed, or on {@link close}). Resolves at once
   * unless the worker is more than {@link MAX_QUEUED_BYTES} behind.
   */
  async update(chunk: Uint8Array): Promise<void> {
    if (this.#failure !== undefined) {
      chunk.fill(0);
      throw this.#failure;
    }
    if (chunk.buffer instanceof SharedArrayBuffer) {
      // Shared memory is not moved: the worker hashes and zeroes it in place.
      this.#worker.postMessage(chunk);
      this.#queued += chunk.byteLength;
    } else {
      this.#queued += this.#move(chunk);
    }
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

  /**
   * Stops the worker. Chunks it still queues are zeroed first, unhashed: terminating at once would
   * free them with its heap as they are. Waits at most {@link CLOSE_TIMEOUT_MS} for that.
   */
  async close(): Promise<void> {
    this.#failure ??= new ModelError('ERR_MODEL_LOAD_FAILED', 'the digest worker was closed');
    this.#onFailure = undefined;
    this.#release();
    if (!this.#drained) {
      Atomics.store(this.#abandoned, 0, 1);
      let timer: NodeJS.Timeout | undefined;
      await new Promise<void>((resolve) => {
        this.#closed = resolve;
        timer = setTimeout(resolve, CLOSE_TIMEOUT_MS);
        this.#worker.postMessage('close');
      });
      clearTimeout(timer);
      this.#drained = true;
    }
    await this.#worker.terminate();
  }

  /** Posts `chunk`'s bytes to the worker, moving its memory when it may; returns the bytes sent. */
  #move(chunk: Uint8Array): number {
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
    return moved.byteLength;
  }

  #release(): void {
    const waiter = this.#waiter;
    this.#waiter = undefined;
    waiter?.();
  }
}
