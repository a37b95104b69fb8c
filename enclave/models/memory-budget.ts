/**
 * How much model the enclave will hold. An enclave's memory is fixed at launch; a model that does
 * not fit is refused before a byte of it is decrypted, instead of failing half-way (or taking the
 * process down) later.
 */
import { ModelError } from '../../shared/errors.ts';

/** A claim on part of the budget; release it when the model is gone. */
export interface Reservation {
  readonly bytes: number;
  release(): void;
}

/** Tracks reserved bytes against a limit. */
export class MemoryBudget {
  readonly limitBytes: number;
  #usedBytes = 0;

  constructor(limitBytes: number) {
    if (!Number.isSafeInteger(limitBytes) || limitBytes <= 0)
      throw new RangeError('the memory budget must be a positive number of bytes');
    this.limitBytes = limitBytes;
  }

  get usedBytes(): number {
    return this.#usedBytes;
  }

  /**
   * Reserves `bytes`.
   * @throws {ModelError} `ERR_MODEL_TOO_LARGE`.
   */
  reserve(bytes: number): Reservation {
    if (!Number.isSafeInteger(bytes) || bytes <= 0)
      throw new ModelError('ERR_MODEL_LOAD_FAILED', 'a model size must be a positive number of bytes');
    if (this.#usedBytes + bytes > this.limitBytes) {
      throw new ModelError(
        'ERR_MODEL_TOO_LARGE',
        `a model of ${bytes} bytes does not fit: ${this.limitBytes - this.#usedBytes} of ${this.limitBytes} bytes are free`,
      );
    }
    this.#usedBytes += bytes;
    let released = false;
    return {
      bytes,
      release: () => {
        if (released) return;
        released = true;
        this.#usedBytes -= bytes;
      },
    };
  }
}
