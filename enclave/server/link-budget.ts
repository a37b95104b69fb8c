/**
 * The bytes all link connections together may hold for large frames, from the moment a frame's
 * header is accepted until its handler has answered (its payload stays referenced until then).
 * A frame that does not fit waits in FIFO order, its connection paused, so back-pressure reaches
 * the sender instead of memory growing; every release admits waiting frames in order.
 */

interface Waiter {
  readonly bytes: number;
  readonly grant: () => void;
}

/** A shared byte budget with a FIFO of waiting reservations. */
export class LinkBudget {
  readonly limit: number;
  #used = 0;
  #waiting: Waiter[] = [];

  constructor(limit: number) {
    this.limit = limit;
  }

  /** Bytes reserved now. */
  get used(): number {
    return this.#used;
  }

  /** Reservations waiting for room. */
  get waiting(): number {
    return this.#waiting.length;
  }

  /** Reserves at once when nothing waits ahead and the bytes fit. */
  tryReserve(bytes: number): boolean {
    if (this.#waiting.length > 0 || this.#used + bytes > this.limit) return false;
    this.#used += bytes;
    return true;
  }

  /** Queues a reservation; `grant` runs once it is made. Returns a function that withdraws it. */
  wait(bytes: number, grant: () => void): () => void {
    const waiter = { bytes, grant };
    this.#waiting.push(waiter);
    return () => {
      this.#waiting = this.#waiting.filter((entry) => entry !== waiter);
      this.#admit();
    };
  }

  /** Returns reserved bytes and admits whoever now fits. */
  release(bytes: number): void {
    this.#used -= bytes;
    this.#admit();
  }

  #admit(): void {
    while (this.#waiting.length > 0) {
      const head = this.#waiting[0] as Waiter;
      if (this.#used + head.bytes > this.limit) return;
      this.#waiting.shift();
      this.#used += head.bytes;
      head.grant();
    }
  }
}
