/**
 * The client's one verified attestation and the one attestation in flight: calls that need an
 * attestation while one is being fetched share it (one request, one verification), and a cached
 * one is reused until it ages out or does not list the model asked for.
 */
import type { Attestation } from './attestation.ts';
import { CallContext } from './transport.ts';

/** An attestation in progress, shared by every call that needs one meanwhile. */
interface Flight {
  readonly promise: Promise<Attestation>;
  readonly controller: AbortController;
  waiters: number;
}

export class AttestationCache {
  readonly #fetchOne: (context: CallContext) => Promise<Attestation>;
  readonly #clientSignal: AbortSignal | undefined;
  readonly #clock: () => number;
  readonly #reattestAfterMs: number;
  #latest: Attestation | undefined;
  #flight: Flight | undefined;

  /** `fetchOne` fetches and verifies one attestation under the context it is given. */
  constructor(options: {
    fetchOne: (context: CallContext) => Promise<Attestation>;
    clientSignal: AbortSignal | undefined;
    clock: () => number;
    reattestAfterMs: number;
  }) {
    this.#fetchOne = options.fetchOne;
    this.#clientSignal = options.clientSignal;
    this.#clock = options.clock;
    this.#reattestAfterMs = options.reattestAfterMs;
  }

  /** The last verified attestation, if any. */
  get latest(): Attestation | undefined {
    return this.#latest;
  }

  /**
   * Joins the attestation in flight, or starts one. The flight has no deadline of its own: each
   * caller waits under its own context, and once the last one has given up the flight is aborted,
   * so one caller's short timeout never fails another's call, and nothing runs for nobody.
   */
  async fresh(context: CallContext): Promise<Attestation> {
    // A call that has already ended must not start (or keep alive) an attestation.
    context.check();
    let flight = this.#flight;
    if (flight === undefined) {
      const controller = new AbortController();
      const promise = this.#fetchOne(new CallContext(undefined, [this.#clientSignal, controller.signal]))
        .then((attestation) => {
          this.#latest = attestation;
          return attestation;
        })
        .finally(() => {
          if (this.#flight === flight) this.#flight = undefined;
        });
      // Every waiter may have left; the outcome then has nobody to go to.
      promise.catch(() => {});
      flight = { promise, controller, waiters: 0 };
      this.#flight = flight;
    }
    flight.waiters++;
    try {
      return await context.race(flight.promise);
    } finally {
      flight.waiters--;
      if (flight.waiters === 0 && this.#flight === flight) {
        this.#flight = undefined;
        flight.controller.abort();
      }
    }
  }

  /** A usable attestation: the cached one unless it aged out or does not list `model`. */
  async usable(context: CallContext, model?: string): Promise<Attestation> {
    const cached = this.#latest;
    const fresh = cached !== undefined && this.#clock() - cached.verifiedAt < this.#reattestAfterMs;
    const knows = model === undefined || cached?.models.some((entry) => entry.name === model) === true;
    return fresh && knows ? cached : this.fresh(context);
  }
}
