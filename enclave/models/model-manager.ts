/**
 * The enclave's loaded models: a load streams ciphertext in (with back-pressure), reserves memory
 * first, unseals, builds sessions in every inference worker and only then makes the model visible.
 * A failure at any step leaves nothing loaded and the previous version of the model (if any) serving.
 */
import { PassThrough } from 'node:stream';
import { once } from 'node:events';
import type { ModelIdentity } from '../../shared/binding.ts';
import { ModelError } from '../../shared/errors.ts';
import type { V2ModelMetadata } from '../../shared/inference/v2.ts';
import { MODEL_NAME_PATTERN } from '../../shared/sealing/index.ts';
import type { InferencePool } from '../inference/pool.ts';
import type { DecryptRequest } from '../kms/attested-kms.ts';
import type { MemoryBudget, Reservation } from './memory-budget.ts';
import { unsealModel } from './unseal.ts';

/** Largest sealed artifact accepted (the memory budget usually says no earlier). */
export const MAX_ARTIFACT_BYTES = 16 * 1024 * 1024 * 1024;

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

  /**
   * Starts loading `name` from a sealed artifact of `ciphertextBytes` bytes.
   * @throws {ModelError} `ERR_MODEL_TOO_LARGE` (before anything is decrypted) or `ERR_MODEL_LOAD_FAILED`.
   */
  beginLoad(name: string, ciphertextBytes: number): ModelUpload {
    if (!MODEL_NAME_PATTERN.test(name)) throw new ModelError('ERR_MODEL_LOAD_FAILED', 'invalid model name');
    if (
      !Number.isSafeInteger(ciphertextBytes) ||
      ciphertextBytes <= 0 ||
      ciphertextBytes > MAX_ARTIFACT_BYTES
    ) {
      throw new ModelError('ERR_MODEL_LOAD_FAILED', `artifact size must be 1 to ${MAX_ARTIFACT_BYTES} bytes`);
    }
    const reservation = this.#options.budget.reserve(ciphertextBytes);
    const input = new PassThrough({ highWaterMark: 4 * 1024 * 1024 });
    let received = 0;
    const result = this.#load(name, ciphertextBytes, input).then(
      (model) => {
        this.#loaded.get(name)?.reservation.release();
        this.#loaded.set(name, { model, reservation });
        return model;
      },
      (error: unknown) => {
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
    return {
      write: async (chunk) => {
        if (failure !== undefined) throw failure;
        received += chunk.byteLength;
        if (received > ciphertextBytes) {
          input.destroy(new ModelError('ERR_MODEL_LOAD_FAILED', 'more ciphertext than the declared size'));
          await settled;
          throw failure;
        }
        if (!input.write(chunk)) await Promise.race([once(input, 'drain').catch(() => undefined), settled]);
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
    entry.reservation.release();
    await this.#options.pool.unload(name);
  }

  async #load(name: string, ciphertextBytes: number, input: PassThrough): Promise<LoadedModel> {
    const { identity, plaintext } = await unsealModel({
      ciphertext: input,
      ciphertextBytes,
      decrypt: this.#options.decrypt,
      expectedName: name,
      ...(this.#options.allowedKeyArns === undefined ? {} : { allowedKeyArns: this.#options.allowedKeyArns }),
    });
    const sizeBytes = plaintext.byteLength;
    // The pool copies the bytes into each worker and overwrites `plaintext` when done.
    const metadata = await this.#options.pool.load(name, plaintext);
    return { identity, metadata, sizeBytes };
  }
}
