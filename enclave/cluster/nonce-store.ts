/**
 * Single-use nonces with a time to live, for the cluster key exchange: the holder's challenges and
 * the requester's request nonces (docs/protocols.md "Cluster key"). A nonce is consumed by its first
 * use, successful or not, so a captured document can never be answered twice. The store is bounded
 * and refuses a new nonce when full instead of evicting one — eviction would let whoever floods it
 * cancel a legitimate exchange in flight, and refusal costs only the flooder's own retries.
 */
import { randomBytes } from 'node:crypto';
import { ClusterError } from '../../shared/errors.ts';

/** Challenges and request nonces are 32 random bytes: unguessable, and within the NSM's 1024-byte nonce. */
export const CLUSTER_NONCE_BYTES = 32;

interface Pending<T> {
  readonly value: T;
  readonly expiresAt: number;
}

export class NonceStore<T> {
  readonly #pending = new Map<string, Pending<T>>();
  readonly #capacity: number;
  readonly #ttlMs: number;
  readonly #clock: () => number;
  readonly #release: (value: T) => void;

  /** `release` runs for every value that leaves the store unused (expired, or closed). */
  constructor(options: {
    capacity: number;
    ttlMs: number;
    clock: () => number;
    release?: (value: T) => void;
  }) {
    this.#capacity = options.capacity;
    this.#ttlMs = options.ttlMs;
    this.#clock = options.clock;
    this.#release = options.release ?? (() => {});
  }

  /**
   * A fresh nonce remembered with `value`.
   * @throws {ClusterError} `ERR_CLUSTER_BUSY` when `capacity` unexpired nonces are outstanding.
   */
  issue(value: T): Uint8Array {
    this.#purge();
    if (this.#pending.size >= this.#capacity) {
      throw new ClusterError(
        'ERR_CLUSTER_BUSY',
        `${this.#capacity} cluster exchanges are outstanding; retry after ${this.#ttlMs} ms`,
      );
    }
    const nonce = new Uint8Array(randomBytes(CLUSTER_NONCE_BYTES));
    this.#pending.set(Buffer.from(nonce).toString('hex'), {
      value,
      expiresAt: this.#clock() + this.#ttlMs,
    });
    return nonce;
  }

  /**
   * Takes the value issued with `nonce`, which can never be used again.
   * @throws {ClusterError} `ERR_CLUSTER_CHALLENGE_UNKNOWN` for a nonce never issued, used or expired.
   */
  consume(nonce: Uint8Array | undefined): T {
    this.#purge();
    const key = nonce === undefined ? '' : Buffer.from(nonce).toString('hex');
    const pending = this.#pending.get(key);
    if (pending === undefined) {
      throw new ClusterError(
        'ERR_CLUSTER_CHALLENGE_UNKNOWN',
        'the document carries a nonce this enclave did not issue, already used, or let expire',
      );
    }
    this.#pending.delete(key);
    return pending.value;
  }

  /** Outstanding nonces (for tests and status). */
  get size(): number {
    this.#purge();
    return this.#pending.size;
  }

  #purge(): void {
    const now = this.#clock();
    for (const [key, pending] of this.#pending) {
      if (pending.expiresAt <= now) {
        this.#pending.delete(key);
        this.#release(pending.value);
      }
    }
  }
}
