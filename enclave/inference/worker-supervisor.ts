/**
 * The inference pool's worker threads: starts them, matches their answers to requests, and
 * replaces one that dies — after a pause that doubles with each death in a row, giving the slot
 * up after {@link MAX_WORKER_RESTARTS}, every step logged — so a crashing session neither takes
 * the service down nor spins. What a replacement lacks (its sessions) is the pool's business.
 */
import { Worker } from 'node:worker_threads';
import { InferenceError } from '../../shared/errors.ts';
import type { FlatTensor } from '../../shared/inference/v2.ts';
import type { WorkerRequest, WorkerResponse } from './worker-protocol.ts';

/** Set by the image's bundler (scripts/build-enclave.ts): the compiled worker beside the bundle. */
declare const NITRO_INFER_BUNDLED_WORKER: string | undefined;

// From sources the worker registers the TypeScript loader first; in the image it is plain JS.
const WORKER_ENTRY =
  typeof NITRO_INFER_BUNDLED_WORKER === 'string'
    ? new URL(NITRO_INFER_BUNDLED_WORKER, import.meta.url)
    : new URL('./worker-entry.js', import.meta.url);

/** Restarts of one worker slot in a row before it is given up (each after a longer pause). */
export const MAX_WORKER_RESTARTS = 5;
/** The first pause before a replacement; doubled on each restart in a row, up to the maximum. */
export const WORKER_RESTART_BACKOFF_MS = 200;
export const MAX_WORKER_RESTART_BACKOFF_MS = 10_000;
/** A worker that lived this long resets its slot's count: it died of something new, not a crash loop. */
export const WORKER_STABLE_MS = 60_000;

/** Structured log lines of the pool (no content ever). */
export type PoolLog = (
  level: 'info' | 'warn' | 'error',
  event: string,
  details?: Readonly<Record<string, string | number | boolean>>,
) => void;

/**
 * A plaintext model buffer the pool can move to workers and back (a `BufferLease` of the memory
 * budget, or a caller's own bytes). `lost` is called once the worker holding it has exited.
 */
export interface PlaintextBuffer {
  readonly view: Uint8Array;
  lend(): ArrayBuffer;
  restore(buffer: ArrayBuffer): void;
  lost(): void;
}

interface Pending {
  resolve(outputs: readonly FlatTensor[]): void;
  reject(error: Error): void;
}

/** One worker thread and what the pool tracks about it. */
export interface PoolWorker {
  readonly worker: Worker;
  readonly slot: number;
  readonly startedAt: number;
  readonly pending: Map<number, Pending>;
  /** Answers awaited for loads and unloads, by session key. */
  readonly waiters: Map<string, (response: WorkerResponse) => void>;
  /** Session keys this worker holds. */
  readonly keys: Set<string>;
  alive: boolean;
  /** The plaintext buffer while it is in this worker. */
  lent: PlaintextBuffer | undefined;
}

const STOPPED = 'the inference worker stopped';

export class WorkerSupervisor {
  readonly #slots: PoolWorker[];
  readonly #restartsInRow: number[];
  readonly #timers = new Set<NodeJS.Timeout>();
  readonly #log: PoolLog;
  readonly #changed: () => void;
  #nextRequestId = 1;
  #restarts = 0;
  #closed = false;

  /** `changed` runs whenever a worker dies or is replaced. */
  constructor(size: number, log: PoolLog, changed: () => void) {
    this.#log = log;
    this.#changed = changed;
    this.#restartsInRow = new Array<number>(size).fill(0);
    this.#slots = Array.from({ length: size }, (_, slot) => this.#spawn(slot));
  }

  /** Worker slots, how many run now, and replacements made since start. */
  get stats(): { readonly size: number; readonly alive: number; readonly restarts: number } {
    return { size: this.#slots.length, alive: this.alive().length, restarts: this.#restarts };
  }

  alive(): PoolWorker[] {
    return this.#slots.filter((entry) => entry.alive);
  }

  /** Sends a load or unload for session `key`; a dead worker answers `failed`. */
  request(
    entry: PoolWorker,
    key: string,
    message: WorkerRequest,
    transfer: ArrayBuffer[] = [],
  ): Promise<WorkerResponse> {
    if (!entry.alive)
      return Promise.resolve({ op: 'failed', code: 'ERR_MODEL_LOAD_FAILED', message: STOPPED });
    return new Promise((resolve) => {
      entry.waiters.set(key, resolve);
      // The buffer is moved, not copied: after this the sender cannot read it any more.
      entry.worker.postMessage(message, transfer);
    });
  }

  /** Runs session `key` on `entry`. */
  run(
    entry: PoolWorker,
    key: string,
    inputs: readonly FlatTensor[],
    outputNames?: readonly string[],
  ): Promise<readonly FlatTensor[]> {
    const requestId = this.#nextRequestId++;
    return new Promise((resolve, reject) => {
      entry.pending.set(requestId, { resolve, reject });
      const message: WorkerRequest = {
        op: 'run',
        requestId,
        name: key,
        inputs,
        ...(outputNames === undefined ? {} : { outputNames }),
      };
      // Input buffers are moved, not cloned: a binary request's tensors are views into its
      // decrypted body, which moves whole (the caller has hashed it and reads it no more).
      entry.worker.postMessage(message, transferables(inputs));
    });
  }

  /** Stops every worker and every pending replacement. */
  async close(): Promise<void> {
    this.#closed = true;
    for (const timer of this.#timers) clearTimeout(timer);
    this.#timers.clear();
    await Promise.all(
      this.#slots.map(async (entry) => {
        entry.alive = false;
        await entry.worker.terminate();
      }),
    );
  }

  #spawn(slot: number): PoolWorker {
    const worker = new Worker(WORKER_ENTRY);
    const entry: PoolWorker = {
      worker,
      slot,
      startedAt: Date.now(),
      pending: new Map(),
      waiters: new Map(),
      keys: new Set(),
      alive: true,
      lent: undefined,
    };
    worker.on('message', (response: WorkerResponse) => this.#onMessage(entry, response));
    const fail = () => {
      if (!entry.alive) return;
      // A worker that died takes its in-flight requests with it; the others keep serving.
      entry.alive = false;
      for (const pending of entry.pending.values())
        pending.reject(new InferenceError('ERR_INFERENCE_FAILED', STOPPED));
      entry.pending.clear();
      for (const waiter of entry.waiters.values())
        waiter({ op: 'failed', code: 'ERR_MODEL_LOAD_FAILED', message: STOPPED });
      entry.waiters.clear();
    };
    worker.on('error', fail);
    worker.on('exit', (exitCode) => {
      const unexpected = entry.alive && !this.#closed;
      fail();
      // Its heap — and a plaintext buffer lent to it — is gone with the thread.
      entry.lent?.lost();
      entry.lent = undefined;
      if (unexpected) this.#replace(entry, exitCode);
    });
    return entry;
  }

  #replace(dead: PoolWorker, exitCode: number): void {
    const slot = dead.slot;
    if (Date.now() - dead.startedAt >= WORKER_STABLE_MS) this.#restartsInRow[slot] = 0;
    const inRow = ++this.#restartsInRow[slot]!;
    if (inRow > MAX_WORKER_RESTARTS) {
      this.#log('error', 'inference.worker_abandoned', { slot, exitCode, restarts: inRow - 1 });
      this.#changed();
      return;
    }
    const delayMs = Math.min(MAX_WORKER_RESTART_BACKOFF_MS, WORKER_RESTART_BACKOFF_MS * 2 ** (inRow - 1));
    this.#log('warn', 'inference.worker_died', { slot, exitCode, delayMs, lost: dead.keys.size });
    this.#changed();
    const timer = setTimeout(() => {
      this.#timers.delete(timer);
      if (this.#closed) return;
      this.#slots[slot] = this.#spawn(slot);
      this.#restarts += 1;
      this.#log('info', 'inference.worker_replaced', { slot, restarts: this.#restarts });
      this.#changed();
    }, delayMs);
    timer.unref();
    this.#timers.add(timer);
  }

  #onMessage(entry: PoolWorker, response: WorkerResponse): void {
    if ((response.op === 'result' || response.op === 'failed') && response.requestId !== undefined) {
      const pending = entry.pending.get(response.requestId);
      entry.pending.delete(response.requestId);
      if (pending === undefined) return;
      if (response.op === 'result') pending.resolve(response.outputs);
      else
        pending.reject(
          new InferenceError(
            response.code === 'ERR_MODEL_NOT_FOUND' ? 'ERR_MODEL_NOT_FOUND' : 'ERR_INFERENCE_FAILED',
            response.message,
          ),
        );
      return;
    }
    const name = 'name' in response ? response.name : undefined;
    if (name === undefined) return;
    const waiter = entry.waiters.get(name);
    entry.waiters.delete(name);
    waiter?.(response);
  }
}

/**
 * The distinct ArrayBuffers behind the inputs' typed arrays (a buffer listed twice is a
 * DataCloneError). Node's pooled Buffers are untransferable and are cloned instead, which Node 20
 * does silently.
 */
function transferables(inputs: readonly FlatTensor[]): ArrayBuffer[] {
  const buffers = new Set<ArrayBuffer>();
  for (const input of inputs) {
    if (!Array.isArray(input.data)) {
      const { buffer } = input.data as ArrayBufferView;
      if (buffer instanceof ArrayBuffer) buffers.add(buffer);
    }
  }
  return [...buffers];
}
