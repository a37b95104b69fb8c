/**
 * How much model the enclave will hold. An enclave's memory is fixed at launch; a model that does
 * not fit is refused before a byte of it is decrypted, instead of failing half-way (or taking the
 * process down) later.
 *
 * The budget is an upper bound on model memory only if nothing it has released can still be held.
 * Two kinds of claims keep that true (docs/protocols.md, "Memory"):
 * - a {@link Reservation} for memory that exists only while its owner does (sessions in workers);
 *   the owner releases it after that memory is gone (the workers said so, or exited);
 * - a {@link BufferLease} on a plaintext buffer from a small pool the budget owns. A buffer is
 *   allocated once and reused by later loads; it stays counted while it exists — idle, leased, or
 *   lent to a worker — so a load abandoned mid-stream leaves nothing to the garbage collector's
 *   timing, and the next load reuses the same pages instead of allocating more. A buffer the pool
 *   gives up is freed at once (detached, see `#drop`) and counted until that has happened.
 */
import { once } from 'node:events';
import { MessageChannel } from 'node:worker_threads';
import { ModelError } from '../../shared/errors.ts';

/** A claim on part of the budget; release it when the memory it stands for is gone. */
export interface Reservation {
  readonly bytes: number;
  release(): void;
}

/**
 * A pooled buffer, lent to one load at a time. `view` is exactly the requested length. While the
 * buffer is moved to a worker (`lend`), it is still counted; `restore` takes it back, `lost` says it
 * will never come back (its worker died, which frees it with the worker's heap).
 */
export interface BufferLease {
  readonly view: Uint8Array;
  /** Bytes of `view` written so far: only these are zeroed on return (untouched pages stay unmapped). */
  written: number;
  /** The buffer was moved to a worker; `view` must not be used until {@link restore}. */
  lend(): ArrayBuffer;
  /** The worker gave the buffer back (the same memory, a new `ArrayBuffer` object). */
  restore(buffer: ArrayBuffer): void;
  /** The buffer is gone with its worker; its bytes are released (the worker has exited). */
  lost(): void;
  /** Zeroes what was written and returns the buffer to the pool. */
  release(): void;
}

/** Buffers are sized in whole MiB so that loads of similar sizes share one buffer. */
export const BUFFER_GRANULE_BYTES = 1024 * 1024;

/** Idle buffers kept for reuse; more than this many are freed. */
export const MAX_IDLE_BUFFERS = 4;

interface PooledBuffer {
  buffer: ArrayBuffer | undefined;
  readonly capacity: number;
}

/** Tracks reserved bytes against a limit and owns the plaintext buffers. */
export class MemoryBudget {
  readonly limitBytes: number;
  #reservedBytes = 0;
  #bufferBytes = 0;
  /** Bytes of dropped buffers whose memory is being freed (still counted in `#bufferBytes`). */
  #freeingBytes = 0;
  readonly #idle: PooledBuffer[] = [];

  constructor(limitBytes: number) {
    if (!Number.isSafeInteger(limitBytes) || limitBytes <= 0)
      throw new RangeError('the memory budget must be a positive number of bytes');
    this.limitBytes = limitBytes;
  }

  /** Bytes counted: reservations plus every buffer that exists (idle, leased, lent or being freed). */
  get usedBytes(): number {
    return this.#reservedBytes + this.#bufferBytes;
  }

  /** Bytes of buffers that exist, whether idle or in use. */
  get bufferBytes(): number {
    return this.#bufferBytes;
  }

  /**
   * Reserves `bytes`.
   * @throws {ModelError} `ERR_MODEL_TOO_LARGE`.
   */
  reserve(bytes: number): Reservation {
    if (!Number.isSafeInteger(bytes) || bytes < 0)
      throw new ModelError('ERR_MODEL_LOAD_FAILED', 'a reservation must be a number of bytes');
    this.#refuseUnlessFree(bytes, bytes);
    this.#reservedBytes += bytes;
    let released = false;
    return {
      bytes,
      release: () => {
        if (released) return;
        released = true;
        this.#reservedBytes -= bytes;
      },
    };
  }

  /**
   * Lends a buffer of `bytes` from the pool, allocating one only when no idle buffer is large enough.
   * @throws {ModelError} `ERR_MODEL_TOO_LARGE`.
   */
  acquire(bytes: number): BufferLease {
    if (!Number.isSafeInteger(bytes) || bytes <= 0)
      throw new ModelError('ERR_MODEL_LOAD_FAILED', 'a model size must be a positive number of bytes');
    let index = -1;
    for (let candidate = 0; candidate < this.#idle.length; candidate++) {
      const capacity = this.#idle[candidate]!.capacity;
      if (capacity >= bytes && (index < 0 || capacity < this.#idle[index]!.capacity)) index = candidate;
    }
    let pooled: PooledBuffer;
    if (index >= 0) {
      pooled = this.#idle.splice(index, 1)[0]!;
    } else {
      const capacity = Math.ceil(bytes / BUFFER_GRANULE_BYTES) * BUFFER_GRANULE_BYTES;
      this.#refuseUnlessFree(capacity, bytes);
      // Zero-filled by the allocator (calloc, fresh pages): no page is committed until written.
      pooled = { buffer: new ArrayBuffer(capacity), capacity };
      this.#bufferBytes += capacity;
    }
    return this.#lease(pooled, bytes);
  }

  #lease(pooled: PooledBuffer, bytes: number): BufferLease {
    let view = new Uint8Array(pooled.buffer!, 0, bytes);
    let state: 'held' | 'lent' | 'done' = 'held';
    const lease: BufferLease = {
      get view() {
        return view;
      },
      written: 0,
      lend: () => {
        if (state !== 'held') throw new Error('the buffer is not held');
        state = 'lent';
        return pooled.buffer!;
      },
      restore: (buffer) => {
        if (state !== 'lent' || buffer.byteLength !== pooled.capacity)
          throw new Error('a restored buffer must be the one lent');
        state = 'held';
        pooled.buffer = buffer;
        view = new Uint8Array(buffer, 0, bytes);
      },
      lost: () => {
        if (state !== 'lent') return;
        state = 'done';
        pooled.buffer = undefined;
        this.#bufferBytes -= pooled.capacity;
      },
      release: () => {
        if (state !== 'held') return;
        state = 'done';
        // Zero only what was written: a second full pass would commit pages nothing ever touched.
        view.fill(0, 0, Math.min(lease.written, bytes));
        this.#keep(pooled);
      },
    };
    return lease;
  }

  /**
   * Frees idle buffers until a reservation of `reserveBytes` plus a buffer of `bufferBytes` would
   * fit, keeping the idle buffer that {@link acquire} would reuse, and resolves once their memory is
   * really gone. Call before {@link reserve} / {@link acquire}: they never count an idle buffer as free.
   */
  async makeRoom(reserveBytes: number, bufferBytes: number): Promise<void> {
    this.#idle.sort((a, b) => a.capacity - b.capacity);
    const fresh = Math.ceil(bufferBytes / BUFFER_GRANULE_BYTES) * BUFFER_GRANULE_BYTES;
    let reusable = this.#idle.find((pooled) => pooled.capacity >= bufferBytes);
    const needed = () => reserveBytes + (reusable === undefined ? fresh : 0);
    const fits = () => this.limitBytes - this.usedBytes + this.#freeingBytes >= needed();
    const freed: Promise<void>[] = [];
    for (const pooled of [...this.#idle]) {
      if (fits()) break;
      if (pooled === reusable) continue;
      this.#idle.splice(this.#idle.indexOf(pooled), 1);
      freed.push(this.#drop(pooled));
    }
    // The reusable buffer may itself be what stands in the way (much larger than this load needs).
    const larger = reusable;
    if (
      !fits() &&
      larger !== undefined &&
      this.limitBytes - this.usedBytes + this.#freeingBytes + larger.capacity >= reserveBytes + fresh
    ) {
      reusable = undefined;
      this.#idle.splice(this.#idle.indexOf(larger), 1);
      freed.push(this.#drop(larger));
    }
    await Promise.all(freed);
  }

  #keep(pooled: PooledBuffer): void {
    this.#idle.push(pooled);
    if (this.#idle.length <= MAX_IDLE_BUFFERS) return;
    this.#idle.sort((a, b) => a.capacity - b.capacity);
    void this.#drop(this.#idle.shift()!);
  }

  /**
   * Frees a buffer now rather than whenever the garbage collector runs: moving it into a message
   * on a channel whose ports are then closed detaches it here and discards the message, which frees
   * the backing store; the bytes stay counted until the port's `close` event says it has happened.
   */
  async #drop(pooled: PooledBuffer): Promise<void> {
    const buffer = pooled.buffer;
    pooled.buffer = undefined;
    if (buffer === undefined) return;
    this.#freeingBytes += pooled.capacity;
    const { port1, port2 } = new MessageChannel();
    port1.postMessage(null, [buffer]);
    const closed = once(port2, 'close');
    port2.close();
    port1.close();
    await closed;
    this.#freeingBytes -= pooled.capacity;
    this.#bufferBytes -= pooled.capacity;
  }

  #refuseUnlessFree(bytes: number, requested: number): void {
    const free = this.limitBytes - this.usedBytes;
    if (bytes <= free) return;
    throw new ModelError(
      'ERR_MODEL_TOO_LARGE',
      `a model of ${requested} bytes does not fit: ${Math.max(0, free)} of ${this.limitBytes} bytes are free`,
    );
  }
}
