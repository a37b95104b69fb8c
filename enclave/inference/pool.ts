/**
 * A pool of inference worker threads (DESIGN.md 6). Every worker holds every loaded model, with one
 * intra-op thread each, so concurrent requests spread across cores while the main thread only
 * frames, decrypts and dispatches. Requests go to the worker with the fewest in flight.
 */
// First: ONNX Runtime's telemetry must be off before any worker loads the native library.
import './onnxruntime-env.ts';
import os from 'node:os';
import { Worker } from 'node:worker_threads';
import { InferenceError, ModelError } from '../../shared/errors.ts';
import { fromFlatTensor, toFlatTensors } from '../../shared/inference/v2.ts';
import type {
  FlatTensor,
  V2InferenceRequest,
  V2InferenceResponse,
  V2ModelMetadata,
} from '../../shared/inference/v2.ts';
import type { WorkerRequest, WorkerResponse } from './worker-protocol.ts';

/** Set by the image's bundler (scripts/build-enclave.ts): the compiled worker beside the bundle. */
declare const NITRO_INFER_BUNDLED_WORKER: string | undefined;

// From sources the worker registers the TypeScript loader first; in the image it is plain JS.
const WORKER_ENTRY =
  typeof NITRO_INFER_BUNDLED_WORKER === 'string'
    ? new URL(NITRO_INFER_BUNDLED_WORKER, import.meta.url)
    : new URL('./worker-entry.js', import.meta.url);

interface Pending {
  resolve(outputs: readonly FlatTensor[]): void;
  reject(error: Error): void;
}

interface PoolWorker {
  readonly worker: Worker;
  readonly pending: Map<number, Pending>;
  alive: boolean;
}

/** Options of {@link InferencePool}. */
export interface InferencePoolOptions {
  /** Worker count; defaults to the CPUs available to the enclave. */
  readonly size?: number;
}

/** Runs ONNX models off the event loop. */
export class InferencePool {
  readonly #workers: PoolWorker[];
  /** Model name → the key its sessions have in the workers (a new one per load) and its metadata. */
  readonly #models = new Map<string, { key: string; metadata: V2ModelMetadata }>();
  #generation = 0;
  readonly #loadWaiters = new Map<Worker, Map<string, (response: WorkerResponse) => void>>();
  #nextRequestId = 1;

  constructor(options: InferencePoolOptions = {}) {
    const size = Math.max(1, options.size ?? os.availableParallelism());
    this.#workers = Array.from({ length: size }, () => this.#spawn());
  }

  /** Metadata of every loaded model. */
  get models(): ReadonlyMap<string, V2ModelMetadata> {
    return new Map([...this.#models].map(([name, entry]) => [name, entry.metadata]));
  }

  /**
   * Builds a session for `model` in every worker, then overwrites `model`. A model that fails in
   * any worker is unloaded from all, so it is never half-loaded.
   * @throws {ModelError} `ERR_MODEL_INVALID` or `ERR_MODEL_LOAD_FAILED`.
   */
  async load(name: string, model: Uint8Array): Promise<V2ModelMetadata> {
    // Sessions are built under a fresh key; the name switches to it only once every worker has it,
    // so a failed load never disturbs the version that is serving.
    const key = `${name}@${++this.#generation}`;
    try {
      const workers = this.#alive();
      // Each worker gets its own copy, moved (not cloned) across the thread boundary; the last one
      // takes the caller's buffer itself. Workers overwrite their copy once the session is built.
      const answers = await Promise.all(
        workers.map((entry, index) => {
          const copy = index === workers.length - 1 ? model : new Uint8Array(model);
          return this.#request(
            entry.worker,
            key,
            { op: 'load', name: key, model: copy, intraOpThreads: 1 },
            copy,
          );
        }),
      );
      const failure = answers.find((answer) => answer.op === 'failed');
      if (workers.length === 0 || failure !== undefined || answers.some((answer) => answer.op !== 'loaded')) {
        await this.#unloadKey(key);
        const code =
          failure?.op === 'failed' && failure.code === 'ERR_MODEL_INVALID'
            ? 'ERR_MODEL_INVALID'
            : 'ERR_MODEL_LOAD_FAILED';
        throw new ModelError(code, failure?.op === 'failed' ? failure.message : `model ${name} did not load`);
      }
      const { metadata } = answers[0] as Extract<WorkerResponse, { op: 'loaded' }>;
      const previous = this.#models.get(name);
      this.#models.set(name, { key, metadata: { ...metadata, name } });
      if (previous !== undefined) await this.#unloadKey(previous.key);
      return { ...metadata, name };
    } finally {
      // Moved to a worker (detached, nothing left here) or still ours: then overwrite it.
      if (model.buffer.byteLength > 0) model.fill(0);
    }
  }

  /** Drops a model from every worker. */
  async unload(name: string): Promise<void> {
    const entry = this.#models.get(name);
    this.#models.delete(name);
    if (entry !== undefined) await this.#unloadKey(entry.key);
  }

  async #unloadKey(key: string): Promise<void> {
    await Promise.all(
      this.#alive().map((entry) => this.#request(entry.worker, key, { op: 'unload', name: key })),
    );
  }

  /**
   * Validates a V2 request against the model and runs it.
   * @throws {InferenceError} `ERR_MODEL_NOT_FOUND`, `ERR_INFERENCE_INPUT_INVALID` or `ERR_INFERENCE_FAILED`.
   */
  async infer(name: string, request: V2InferenceRequest): Promise<V2InferenceResponse> {
    const metadata = this.#models.get(name)?.metadata;
    if (metadata === undefined)
      throw new InferenceError(
        'ERR_MODEL_NOT_FOUND',
        `model ${JSON.stringify(name.slice(0, 64))} is not loaded`,
      );
    const inputs = toFlatTensors(request, metadata);
    const outputNames = request.outputs?.map((output) => output.name);
    const outputs = await this.run(name, inputs, outputNames);
    return {
      model_name: name,
      ...(request.id === undefined ? {} : { id: request.id }),
      outputs: outputs.map(fromFlatTensor),
    };
  }

  /** Runs already-validated flat tensors (the benchmark's and the link's fast path). */
  run(
    name: string,
    inputs: readonly FlatTensor[],
    outputNames?: readonly string[],
  ): Promise<readonly FlatTensor[]> {
    const key = this.#models.get(name)?.key;
    if (key === undefined) {
      return Promise.reject(
        new InferenceError('ERR_MODEL_NOT_FOUND', `model ${JSON.stringify(name.slice(0, 64))} is not loaded`),
      );
    }
    const candidates = this.#alive();
    if (candidates.length === 0)
      return Promise.reject(new InferenceError('ERR_INFERENCE_FAILED', 'no inference worker is running'));
    const target = candidates.reduce((best, entry) =>
      entry.pending.size < best.pending.size ? entry : best,
    );
    const requestId = this.#nextRequestId++;
    return new Promise((resolve, reject) => {
      target.pending.set(requestId, { resolve, reject });
      const message: WorkerRequest = {
        op: 'run',
        requestId,
        name: key,
        inputs,
        ...(outputNames === undefined ? {} : { outputNames }),
      };
      target.worker.postMessage(message);
    });
  }

  /** Stops every worker. */
  async close(): Promise<void> {
    await Promise.all(
      this.#workers.map(async (entry) => {
        entry.alive = false;
        await entry.worker.terminate();
      }),
    );
  }

  #alive(): PoolWorker[] {
    return this.#workers.filter((entry) => entry.alive);
  }

  #spawn(): PoolWorker {
    const worker = new Worker(WORKER_ENTRY);
    const entry: PoolWorker = { worker, pending: new Map(), alive: true };
    this.#loadWaiters.set(worker, new Map());
    worker.on('message', (response: WorkerResponse) => this.#onMessage(entry, response));
    const fail = () => {
      // A worker that died takes its in-flight requests with it; the others keep serving.
      entry.alive = false;
      for (const pending of entry.pending.values())
        pending.reject(new InferenceError('ERR_INFERENCE_FAILED', 'the inference worker stopped'));
      entry.pending.clear();
      for (const waiter of this.#loadWaiters.get(worker)?.values() ?? [])
        waiter({ op: 'failed', code: 'ERR_MODEL_LOAD_FAILED', message: 'the inference worker stopped' });
      this.#loadWaiters.get(worker)?.clear();
    };
    worker.on('error', fail);
    worker.on('exit', fail);
    return entry;
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
    const waiters = this.#loadWaiters.get(entry.worker);
    const waiter = waiters?.get(name);
    waiters?.delete(name);
    waiter?.(response);
  }

  #request(
    worker: Worker,
    name: string,
    message: WorkerRequest,
    transfer?: Uint8Array,
  ): Promise<WorkerResponse> {
    return new Promise((resolve) => {
      this.#loadWaiters.get(worker)?.set(name, resolve);
      // The buffer is moved, not copied: after this the sender cannot read it any more.
      worker.postMessage(message, transfer === undefined ? [] : [transfer.buffer as ArrayBuffer]);
    });
  }
}
