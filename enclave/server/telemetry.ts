/**
 * The enclave's telemetry buffer: on a production enclave stdout is readable only from a
 * debug-mode console, so operator events also go into a bounded ring that the parent polls
 * (`telemetry.poll`, handlers/telemetry-poll.ts) and relays to its own log and metrics.
 *
 * Only events and fields that shared/telemetry.ts allows are kept (the parent must not learn
 * which model a request used or how it fared). The ring holds {@link TELEMETRY_BUFFER_EVENTS}
 * events: when the parent does not poll (or an attacker floods the enclave with events, e.g.
 * malformed frames), the oldest unread ones are overwritten and counted, never accumulated. Polls
 * are rate-limited by a token bucket per link connection, so poll spam costs the enclave a bounded
 * amount of work and one connection's spam cannot starve another's polls.
 */
import { randomBytes } from 'node:crypto';
import {
  MAX_TELEMETRY_EVENTS_PER_POLL,
  TELEMETRY_BUFFER_EVENTS,
  sanitizeTelemetryEvent,
} from '../../shared/telemetry.ts';
import type { TelemetryEvent } from '../../shared/telemetry.ts';
import type { Log } from './link-server.ts';

/** Polls allowed in a burst; the parent polls every few seconds. */
export const TELEMETRY_POLL_BURST = 8;
/** Polls regained per second. */
export const TELEMETRY_POLLS_PER_SECOND = 4;

/** One `telemetry.poll` answer's events. */
export interface TelemetryBatch {
  readonly events: readonly TelemetryEvent[];
  /** The highest sequence number recorded so far (the next poll's `after` once caught up). */
  readonly last: number;
  /** Events overwritten before any poll returned them, since the enclave started. */
  readonly dropped: number;
}

/** Options of {@link EnclaveTelemetry}; tests shrink the ring. */
export interface EnclaveTelemetryOptions {
  readonly capacity?: number;
  readonly clock?: () => number;
}

export class EnclaveTelemetry {
  /** Names this process's sequence: after a restart the parent starts its cursor over. */
  readonly boot = randomBytes(8).toString('hex');
  readonly #ring: (TelemetryEvent | undefined)[];
  readonly #clock: () => number;
  #last = 0;
  #polledThrough = 0;
  #dropped = 0;
  /** One token bucket per link connection (at most the link's connection limit of them). */
  readonly #buckets = new Map<number, { tokens: number; refilledAt: number }>();

  constructor(options: EnclaveTelemetryOptions = {}) {
    this.#ring = new Array<TelemetryEvent | undefined>(options.capacity ?? TELEMETRY_BUFFER_EVENTS);
    this.#clock = options.clock ?? Date.now;
  }

  /** Events held now (for tests and the bound's proof). */
  get size(): number {
    return Math.min(this.#last, this.#ring.length);
  }

  get dropped(): number {
    return this.#dropped;
  }

  /** A log that writes to `log` and keeps the allowed events. */
  tee(log: Log): Log {
    return (level, event, details) => {
      log(level, event, details);
      this.record(level, event, details);
    };
  }

  /** Keeps `event` if shared/telemetry.ts allows it, with its allowed fields only. */
  record(level: TelemetryEvent['level'], event: string, details?: Readonly<Record<string, unknown>>): void {
    const clean = sanitizeTelemetryEvent(event, details);
    if (clean === undefined) return;
    // A handler that failed on an OHTTP request failed inside the encryption: the parent sees the
    // request's ERR_INTERNAL already; the error's class would be a fact about its content.
    if (event === 'link.handler_failed' && clean.type === 'ohttp') delete clean.error;
    const seq = ++this.#last;
    const slot = (seq - 1) % this.#ring.length;
    const overwritten = this.#ring[slot];
    if (overwritten !== undefined && overwritten.seq > this.#polledThrough) this.#dropped++;
    this.#ring[slot] = { seq, time: this.#clock(), level, event, details: clean };
  }

  /**
   * Takes a poll token of connection `connection`; false when it polls faster than its bucket
   * refills. Call {@link forget} when the connection closes.
   */
  admitPoll(connection: number): boolean {
    const now = this.#clock();
    let bucket = this.#buckets.get(connection);
    if (bucket === undefined) {
      bucket = { tokens: TELEMETRY_POLL_BURST, refilledAt: now };
      this.#buckets.set(connection, bucket);
    }
    const refill = ((now - bucket.refilledAt) / 1000) * TELEMETRY_POLLS_PER_SECOND;
    if (refill > 0) {
      bucket.tokens = Math.min(TELEMETRY_POLL_BURST, bucket.tokens + refill);
      bucket.refilledAt = now;
    }
    if (bucket.tokens < 1) return false;
    bucket.tokens -= 1;
    return true;
  }

  /** Drops a closed connection's bucket. */
  forget(connection: number): void {
    this.#buckets.delete(connection);
  }

  /** Up to `max` (≤ {@link MAX_TELEMETRY_EVENTS_PER_POLL}) events after `after`, oldest first. */
  poll(after: number, max = MAX_TELEMETRY_EVENTS_PER_POLL): TelemetryBatch {
    const limit = Math.max(0, Math.min(max, MAX_TELEMETRY_EVENTS_PER_POLL));
    const oldest = Math.max(1, this.#last - this.#ring.length + 1);
    const events: TelemetryEvent[] = [];
    for (let seq = Math.max(after + 1, oldest); seq <= this.#last && events.length < limit; seq++) {
      const event = this.#ring[(seq - 1) % this.#ring.length];
      if (event !== undefined) events.push(event);
    }
    const through = events.at(-1)?.seq ?? 0;
    if (through > this.#polledThrough) this.#polledThrough = through;
    return { events, last: this.#last, dropped: this.#dropped };
  }
}
