/**
 * A pool of inference worker threads (DESIGN.md 6). Every worker holds every loaded model, with one
 * intra-op thread each, so concurrent requests spread across cores while the main thread only
 * frames, decrypts and dispatches. Requests go to the worker with the fewest in flight among those
 * that hold the model.
 *
 * Memory: one plaintext buffer serves every worker in turn (moved to a worker, moved back zeroed),
 * so a load never holds more than one copy of the plaintext outside the sessions. A worker that
 * dies is replaced (bounded restarts with backoff); its sessions are gone with it, and the enclave
 * keeps no plaintext, so the models it held are reported as lost until the parent streams them
 * again ({@link InferencePool.restore}); meanwhile the workers that still hold them serve.
 */
// First: ONNX Runtime's telemetry must be off before any worker loads the native library.
import './onnxruntime-env.ts';
import os from 'node:os';
import { InferenceError, ModelError } from '../../shared/errors.ts';
import { fromFlatTensor, toFlatTensors } from '../../shared/inference/v2-tensors.ts';
import type {
  FlatTensor,
  V2InferenceRequest,
  V2InferenceResponse,
  V2ModelMetadata,
} from '../../shared/inference/v2.ts';
import type { WorkerResponse } from './worker-protocol.ts';
import { WorkerSupervisor } from './worker-supervisor.ts';
import type { PlaintextBuffer, PoolLog, PoolWorker } from './worker-supervisor.ts';

export { MAX_WORKER_RESTARTS } from './worker-supervisor.ts';
export type { PlaintextBuffer, PoolLog } from './worker-supervisor.ts';

/** Options of {@link InferencePool}. */
export interface InferencePoolOptions {
  /** Worker count; defaults to the CPUs available to the enclave. */
  readonly size?: number;
  readonly log?: PoolLog;
}

/** Runs ONNX models off the event loop. */
export class InferencePool {
  readonly #workers: WorkerSupervisor;
  readonly #listeners = new Set<() => void>();
  /** Model name → the key its sessions have in the workers (a new one per load) and its metadata. */
  readonly #models = new Map<string, { key: string; metadata: V2ModelMetadata }>();
  #generation = 0;

  constructor(options: InferencePoolOptions = {}) {
    const size = Math.max(1, options.size ?? os.availableParallelism());
    this.#workers = new WorkerSupervisor(size, options.log ?? (() => {}), () => this.#changed());
  }

  /** Metadata of every loaded model. */
  get models(): ReadonlyMap<string, V2ModelMetadata> {
    return new Map([...this.#models].map(([name, entry]) => [name, entry.metadata]));
  }

  /** Worker slots, how many run now, and replacements made since start. */
  get workers(): { readonly size: number; readonly alive: number; readonly restarts: number } {
    return this.#workers.stats;
  }

  /** Workers that hold a session of `name` now. */
  sessions(name: string): number {
    const key = this.#models.get(name)?.key;
    return key === undefined ? 0 : this.#workers.alive().filter((entry) => entry.keys.has(key)).length;
  }

  /** Models some running worker lacks (it replaced one that died): the parent must stream them again. */
  lostModels(): string[] {
    const alive = this.#workers.alive();
    return [...this.#models]
      .filter(([, entry]) => alive.some((worker) => !worker.keys.has(entry.key)))
      .map(([name]) => name)
      .sort();
  }

  /** Calls `listener` whenever a worker dies or is replaced, or sessions come back. */
  onChange(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /**
   * Builds a session for `model` in every worker, one after the other with the same buffer, which
   * the last one zeroes. A model that fails in any worker is unloaded from all, so it is never
   * half-loaded. The caller zeroes the buffer again when it gets it back (a failure stops early).
   * @throws {ModelError} `ERR_MODEL_INVALID` or `ERR_MODEL_LOAD_FAILED`.
   */
  async load(name: string, model: Uint8Array | PlaintextBuffer): Promise<V2ModelMetadata> {
    const plaintext = model instanceof Uint8Array ? ownBuffer(model) : model;
    // Sessions are built under a fresh key; the name switches to it only once every worker has it,
    // so a failed load never disturbs the version that is serving.
    const key = `${name}@${++this.#generation}`;
    const workers = this.#workers.alive();
    let metadata: V2ModelMetadata | undefined;
    let failure: WorkerResponse | undefined;
    for (const [index, entry] of workers.entries()) {
      const answer = await this.#loadInto(entry, key, plaintext, index === workers.length - 1);
      if (answer.op !== 'loaded') {
        failure = answer;
        break;
      }
      metadata ??= answer.metadata;
    }
    if (metadata === undefined || failure !== undefined) {
      await this.#unloadKey(key);
      const code =
        failure?.op === 'failed' && failure.code === 'ERR_MODEL_INVALID'
          ? 'ERR_MODEL_INVALID'
          : 'ERR_MODEL_LOAD_FAILED';
      throw new ModelError(code, failure?.op === 'failed' ? failure.message : `model ${name} did not load`);
    }
    const previous = this.#models.get(name);
    this.#models.set(name, { key, metadata: { ...metadata, name } });
    if (previous !== undefined) await this.#unloadKey(previous.key);
    return { ...metadata, name };
  }

  /**
   * Builds sessions of the serving version of `name` in the running workers that lack one (after a
   * worker was replaced), from a fresh copy of the same model. The caller checks it is the same.
   * @throws {ModelError} `ERR_MODEL_NOT_FOUND`, `ERR_MODEL_INVALID` or `ERR_MODEL_LOAD_FAILED`.
   */
  async restore(name: string, model: PlaintextBuffer): Promise<number> {
    const entry = this.#models.get(name);
    if (entry === undefined) throw new ModelError('ERR_MODEL_NOT_FOUND', `model ${name} is not loaded`);
    let restored = 0;
    const targets = this.#workers.alive().filter((candidate) => !candidate.keys.has(entry.key));
    for (const [index, worker] of targets.entries()) {
      const answer = await this.#loadInto(worker, entry.key, model, index === targets.length - 1);
      if (answer.op !== 'loaded')
        throw new ModelError(
          answer.op === 'failed' && answer.code === 'ERR_MODEL_INVALID'
            ? 'ERR_MODEL_INVALID'
            : 'ERR_MODEL_LOAD_FAILED',
          `model ${name} did not come back in a replaced worker`,
        );
      restored += 1;
    }
    this.#changed();
    return restored;
  }

  /** Drops a model from every worker; resolves once their sessions are released. */
  async unload(name: string): Promise<void> {
    const entry = this.#models.get(name);
    this.#models.delete(name);
    if (entry !== undefined) await this.#unloadKey(entry.key);
  }

  async #loadInto(
    entry: PoolWorker,
    key: string,
    plaintext: PlaintextBuffer,
    wipe: boolean,
  ): Promise<WorkerResponse> {
    if (!entry.alive)
      return { op: 'failed', code: 'ERR_MODEL_LOAD_FAILED', message: 'the inference worker stopped' };
    const { byteOffset, byteLength } = plaintext.view;
    const buffer = plaintext.lend();
    entry.lent = plaintext;
    const answer = await this.#workers.request(
      entry,
      key,
      { op: 'load', name: key, buffer, byteOffset, byteLength, wipe, intraOpThreads: 1 },
      [buffer],
    );
    const returned = answer.op === 'loaded' || answer.op === 'failed' ? answer.buffer : undefined;
    // Without the buffer the worker died holding it: `lost` follows from its exit handler.
    if (returned !== undefined) {
      entry.lent = undefined;
      plaintext.restore(returned);
    }
    if (answer.op === 'loaded') entry.keys.add(key);
    return answer;
  }

  async #unloadKey(key: string): Promise<void> {
    await Promise.all(
      this.#workers
        .alive()
        .filter((entry) => entry.keys.has(key))
        .map(async (entry) => {
          await this.#workers.request(entry, key, { op: 'unload', name: key });
          entry.keys.delete(key);
        }),
    );
  }

  /**
   * Validates a V2 request against the model and runs it.
   * @throws {InferenceError} `ERR_MODEL_NOT_FOUND`, `ERR_MODEL_NOT_READY`, `ERR_INFERENCE_INPUT_INVALID`
   *   or `ERR_INFERENCE_FAILED`.
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
    // The binary tensor data extension: all outputs in binary, or those asked for one by one.
    const allBinary = request.parameters?.binary_data_output === true;
    const binary = new Set(
      request.outputs
        ?.filter((output) => output.parameters?.binary_data === true)
        .map((output) => output.name),
    );
    return {
      model_name: name,
      ...(request.id === undefined ? {} : { id: request.id }),
      outputs: outputs.map((output) => fromFlatTensor(output, allBinary || binary.has(output.name))),
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
    const candidates = this.#workers.alive().filter((entry) => entry.keys.has(key));
    if (candidates.length === 0)
      return Promise.reject(
        new InferenceError(
          'ERR_MODEL_NOT_READY',
          `model ${JSON.stringify(name.slice(0, 64))} lost its sessions and is being loaded again`,
        ),
      );
    const target = candidates.reduce((best, entry) =>
      entry.pending.size < best.pending.size ? entry : best,
    );
    return this.#workers.run(target, key, inputs, outputNames);
  }

  /** Stops every worker (and every pending replacement). */
  async close(): Promise<void> {
    await this.#workers.close();
  }

  #changed(): void {
    for (const listener of this.#listeners) listener();
  }
}

/** A caller's own bytes as a {@link PlaintextBuffer}: moved to each worker and back. */
function ownBuffer(bytes: Uint8Array): PlaintextBuffer {
  // Read before the first move: a moved view reads as empty.
  const { byteOffset, byteLength } = bytes;
  let view = bytes;
  return {
    get view() {
      return view;
    },
    lend: () => view.buffer as ArrayBuffer,
    restore: (buffer) => {
      view = new Uint8Array(buffer, byteOffset, byteLength);
    },
    lost: () => {},
  };
}
