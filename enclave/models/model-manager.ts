/**
 * The enclave's loaded models: a load streams ciphertext in (with back-pressure), reserves memory
 * first, unseals, builds sessions in every inference worker and only then makes the model visible.
 * A failure at any step leaves nothing loaded and the previous version of the model (if any) serving.
 *
 * What a load reserves (docs/protocols.md, "Memory"): a plaintext buffer of the artifact's size from
 * the budget's pool (one copy; the pool moves it from worker to worker) and, per worker,
 * {@link SESSION_MEMORY_FACTOR} × that size + {@link SESSION_OVERHEAD_BYTES} for its session. The
 * session reservation is released only after every worker has released the session (or died).
 */
import { PassThrough } from 'node:stream';
import { once } from 'node:events';
import type { ModelIdentity } from '../../shared/binding.ts';
import { ModelError } from '../../shared/errors.ts';
import type { V2ModelMetadata } from '../../shared/inference/v2.ts';
import { MODEL_NAME_PATTERN } from '../../shared/sealing/index.ts';
import type { InferencePool } from '../inference/pool.ts';
import type { DecryptRequest } from '../kms/attested-kms.ts';
import type { BufferLease, MemoryBudget, Reservation } from './memory-budget.ts';
import { unsealModel } from './unseal.ts';

/** Largest sealed artifact accepted (the memory budget usually says no earlier). */
export const MAX_ARTIFACT_BYTES = 16 * 1024 * 1024 * 1024;

/**
 * Memory of one worker's session, as a multiple of the model's size. Measured with onnxruntime-node
 * on dense models of 16 and 64 MiB (RSS after a warm-up run): 0.9–2.0× the model bytes once built
 * (initializers copied into ONNX Runtime's tensors, allocator rounding); while a session is built,
 * the parsed graph and the tensors coexist, about 2×. Workers build one at a time, so 2× per worker
 * bounds both. Activations of a run depend on its inputs, which the inference body limit bounds.
 */
export const SESSION_MEMORY_FACTOR = 2;

/** Per-session cost beyond the weights (graph, kernels, arena start), measured under 1 MiB. */
export const SESSION_OVERHEAD_BYTES = 1024 * 1024;

/** A model that is serving. */
export interface LoadedModel {
  readonly identity: ModelIdentity;
  readonly metadata: V2ModelMetadata;
  readonly sizeBytes: number;
}

/** An upload in progress. */
export interface ModelUpload {
  /** Feeds the next ciphertext chunk; resolves when the unsealer can take more. */
  write(chunk: Uint8Array): Promise<void>;
  /** Ends the stream and resolves once the model serves. */
  end(): Promise<LoadedModel>;
  /** Abandons the upload; nothing is loaded. */
  abort(): void;
}

/** Options of {@link ModelManager}. */
export interface ModelManagerOptions {
  readonly pool: InferencePool;
  readonly budget: MemoryBudget;
  readonly decrypt: (request: DecryptRequest) => Promise<{ KeyId: string; Plaintext: Uint8Array }>;
  readonly allowedKeyArns?: readonly string[];
}

/** Loads, lists and unloads models. */
export class ModelManager {
  readonly #options: ModelManagerOptions;
  readonly #loaded = new Map<string, { model: LoadedModel; reservation: Reservation }>();
  /** Names with a repair (sessions coming back in replaced workers) in progress. */
  readonly #repairing = new Set<string>();

  constructor(options: ModelManagerOptions) {
    this.#options = options;
  }

  /** Models now serving, sorted by name. */
  list(): LoadedModel[] {
    return [...this.#loaded.values()]
      .map((entry) => entry.model)
      .sort((a, b) => (a.identity.name < b.identity.name ? -1 : 1));
  }

  get(name: string): LoadedModel | undefined {
    return this.#loaded.get(name)?.model;
  }

  /** Bytes a model's sessions are reserved for: every worker slot, replaced ones included. */
  sessionBytes(modelBytes: number): number {
    return this.#options.pool.workers.size * (SESSION_MEMORY_FACTOR * modelBytes + SESSION_OVERHEAD_BYTES);
  }

  /**
   * Starts loading `name` from a sealed artifact of `ciphertextBytes` bytes. When `name` serves but
   * a replaced worker lacks it, this is a repair: the sessions are already reserved, only the buffer
   * is taken, and the artifact must be the one serving (same digest).
   * @throws {ModelError} `ERR_MODEL_TOO_LARGE` (before anything is decrypted) or `ERR_MODEL_LOAD_FAILED`.
   */
  async beginLoad(name: string, ciphertextBytes: number): Promise<ModelUpload> {
    if (!MODEL_NAME_PATTERN.test(name)) throw new ModelError('ERR_MODEL_LOAD_FAILED', 'invalid model name');
    if (
      !Number.isSafeInteger(ciphertextBytes) ||
      ciphertextBytes <= 0 ||
      ciphertextBytes > MAX_ARTIFACT_BYTES
    ) {
      throw new ModelError('ERR_MODEL_LOAD_FAILED', `artifact size must be 1 to ${MAX_ARTIFACT_BYTES} bytes`);
    }
    const budget = this.#options.budget;
    const repair =
      this.#loaded.has(name) && !this.#repairing.has(name) && this.#options.pool.lostModels().includes(name);
    const sessionBytes = repair ? 0 : this.sessionBytes(ciphertextBytes);
    await budget.makeRoom(sessionBytes, ciphertextBytes);
    // Sessions first: a refused load must not leave a freshly allocated buffer behind.
    const reservation = budget.reserve(sessionBytes);
    let lease: BufferLease;
    try {
      lease = budget.acquire(ciphertextBytes);
    } catch (error) {
      reservation.release();
      throw error;
    }
    if (repair) this.#repairing.add(name);
    const input = new PassThrough({ highWaterMark: 4 * 1024 * 1024 });
    let received = 0;
    const result = this.#load(name, ciphertextBytes, input, lease, repair).then(
      (model) => {
        if (repair) {
          this.#repairing.delete(name);
          reservation.release(); // nothing was reserved for it
          return model;
        }
        this.#loaded.get(name)?.reservation.release();
        this.#loaded.set(name, { model, reservation });
        return model;
      },
      (error: unknown) => {
        if (repair) this.#repairing.delete(name);
        // The pool has unloaded the failed sessions (or their worker is gone) before rejecting.
        reservation.release();
        throw error;
      },
    );
    // The load's outcome, observed by every later write (so a refused artifact stops the upload at
    // once with the real reason) and by end(); never left unhandled.
    let failure: unknown;
    const settled = result.then(
      () => undefined,
      (error: unknown) => {
        failure = error;
      },
    );
    input.on('error', () => {}); // reported through `failure`
    // One wait for 'drain' shared by every write that finds the stream full (the link runs several
    // chunk handlers at once): a listener each would pile up on the stream.
    let drain: Promise<void> | undefined;
    const drained = () =>
      (drain ??= once(input, 'drain').then(
        () => {
          drain = undefined;
        },
        () => undefined,
      ));
    return {
      write: async (chunk) => {
        if (failure !== undefined) throw failure;
        received += chunk.byteLength;
        if (received > ciphertextBytes) {
          input.destroy(new ModelError('ERR_MODEL_LOAD_FAILED', 'more ciphertext than the declared size'));
          await settled;
          throw failure;
        }
        if (!input.write(chunk)) await Promise.race([drained(), settled]);
        if (failure !== undefined) throw failure;
      },
      end: async () => {
        input.end();
        return await result;
      },
      abort: () => {
        if (!input.destroyed)
          input.destroy(new ModelError('ERR_MODEL_LOAD_FAILED', 'the upload was abandoned'));
      },
    };
  }

  /** Unloads `name`. @throws {ModelError} `ERR_MODEL_NOT_FOUND`. */
  async unload(name: string): Promise<void> {
    const entry = this.#loaded.get(name);
    if (entry === undefined)
      throw new ModelError('ERR_MODEL_NOT_FOUND', `model ${JSON.stringify(name.slice(0, 64))} is not loaded`);
    this.#loaded.delete(name);
    // Released only once every worker has released its session: until then the memory is held.
    await this.#options.pool.unload(name);
    entry.reservation.release();
  }

  async #load(
    name: string,
    ciphertextBytes: number,
    input: PassThrough,
    lease: BufferLease,
    repair: boolean,
  ): Promise<LoadedModel> {
    try {
      const { identity, plaintext } = await unsealModel({
        ciphertext: input,
        ciphertextBytes,
        decrypt: this.#options.decrypt,
        expectedName: name,
        output: lease,
        ...(this.#options.allowedKeyArns === undefined
          ? {}
          : { allowedKeyArns: this.#options.allowedKeyArns }),
      });
      const sizeBytes = plaintext.byteLength;
      // The pool sees exactly the plaintext, in the lease's buffer.
      const pooled = {
        get view() {
          return lease.view.subarray(0, sizeBytes);
        },
        lend: () => lease.lend(),
        restore: (returned: ArrayBuffer) => lease.restore(returned),
        lost: () => lease.lost(),
      };
      if (repair) {
        const serving = this.#loaded.get(name);
        if (serving === undefined || serving.model.identity.sha384 !== identity.sha384) {
          throw new ModelError(
            'ERR_MODEL_LOAD_FAILED',
            `model ${name} lost sessions: it comes back only from the artifact that is serving`,
          );
        }
        await this.#options.pool.restore(name, pooled);
        return serving.model;
      }
      const metadata = await this.#options.pool.load(name, pooled);
      return { identity, metadata, sizeBytes };
    } finally {
      // Zeroes what was written and returns the buffer to the pool; a no-op while a worker that
      // died still "holds" it (its exit releases the bytes).
      lease.release();
    }
  }
}
