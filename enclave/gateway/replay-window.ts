/**
 * Anti-replay for Oblivious HTTP (RFC 9458 section 6.5.1). The relay — here the parent, which the
 * trust model lets replay anything it relays — could send one captured request many times, and
 * each copy would run the model again: free load amplification, and a way to learn from repeated
 * answers. The gateway therefore accepts an inner request only when
 *   1. its `Date` field is within ±window of the enclave's clock (a missing or unreadable Date is
 *      refused: without it the gateway cannot bound how long it must remember a request), and
 *   2. its `enc` has not been accepted before while that Date was inside the window.
 * An accepted `enc` is remembered until its Date leaves the window; after that a replay is refused
 * by rule 1, so the cache never has to hold more than one window of traffic. It is filled only
 * after a request decapsulated (nothing else can be bound to a fresh `enc`) and, when full,
 * refuses new requests rather than forget old ones: eviction would re-open the replay it exists
 * to stop. Refusals are typed and mean "not processed": a client may send a new request (a new
 * encapsulation, so a new `enc`) — RFC 9458 section 6.5 allows retrying only on such a signal.
 * The window is not secret (section 6.5.1): anyone can probe it.
 */
import { OhttpError } from '../../shared/errors.ts';
import type { Field } from '../../shared/ohttp/bhttp.ts';

/**
 * Default tolerance between the client's Date and the enclave's clock: ±60 s. RFC 9458 asks for
 * room for clock differences and a few round trips; NTP-synchronised machines agree to well under
 * a second, so 60 s admits clients whose clocks have drifted for weeks and retransmissions, while a
 * captured request stays replayable for at most two minutes of Date values — and only once.
 */
export const DEFAULT_REPLAY_WINDOW_MS = 60_000;
/**
 * Default number of `enc` values remembered. An entry lives at most 2 × window (a Date at the
 * window's future edge), so 65 536 entries sustain 65 536 / 120 s ≈ 546 accepted requests per
 * second at the default window, above what one enclave's inference workers serve. Each entry costs
 * about 150 bytes (a 64-character key, a Map slot, a bucket slot): ≈ 10 MiB when full.
 */
export const DEFAULT_REPLAY_CACHE_ENTRIES = 65_536;

/** Options of {@link ReplayWindow}. */
export interface ReplayWindowOptions {
  /** Accepted distance between a request's Date and the enclave's clock, either way (ms). */
  readonly windowMs?: number;
  /** Most `enc` values remembered at once; beyond it requests are refused, never evicted. */
  readonly capacity?: number;
  readonly clock?: () => number;
}

// IMF-fixdate (RFC 9110 section 5.6.7), the only form the SDK sends. The obsolete RFC 850 and
// asctime forms are refused: a refusal here costs a retry, a lenient parser costs a bound.
const IMF_FIXDATE = /^(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} GMT$/;
const MAX_DATE_FIELD_BYTES = 64;

/** The enclave's memory of recently accepted requests. */
export class ReplayWindow {
  readonly #windowMs: number;
  readonly #capacity: number;
  readonly #clock: () => number;
  /** `enc` (hex) → when it may be forgotten (its Date + window). */
  readonly #seen = new Map<string, number>();
  /** The same entries grouped by the second they expire in, so pruning never scans every entry. */
  readonly #expiring = new Map<number, string[]>();

  constructor(options: ReplayWindowOptions = {}) {
    const windowMs = options.windowMs ?? DEFAULT_REPLAY_WINDOW_MS;
    const capacity = options.capacity ?? DEFAULT_REPLAY_CACHE_ENTRIES;
    if (!Number.isSafeInteger(windowMs) || windowMs < 1000 || windowMs % 1000 !== 0)
      throw new RangeError('the replay window is a positive whole number of seconds');
    if (!Number.isSafeInteger(capacity) || capacity < 1)
      throw new RangeError('the replay cache holds at least one entry');
    this.#windowMs = windowMs;
    this.#capacity = capacity;
    this.#clock = options.clock ?? Date.now;
  }

  /** How many `enc` values are remembered now (for tests and metrics). */
  get size(): number {
    this.#prune(this.#clock());
    return this.#seen.size;
  }

  /**
   * Admits a decapsulated request or refuses it; synchronous, so two copies racing through the
   * gateway cannot both pass.
   * @throws {OhttpError} `ERR_OHTTP_DATE_INVALID` (missing, unreadable, or outside the window),
   *   `ERR_OHTTP_REPLAYED` (this `enc` was accepted before) or `ERR_OHTTP_REPLAY_CACHE_FULL`.
   */
  admit(headers: readonly Field[], enc: Uint8Array): void {
    const now = this.#clock();
    const date = requestDate(headers);
    if (date < now - this.#windowMs || date > now + this.#windowMs) {
      throw new OhttpError('ERR_OHTTP_DATE_INVALID', 'the request Date is outside the accepted window');
    }
    this.#prune(now);
    const key = Buffer.from(enc).toString('hex');
    if (this.#seen.has(key)) throw new OhttpError('ERR_OHTTP_REPLAYED', 'this request was already answered');
    if (this.#seen.size >= this.#capacity) {
      throw new OhttpError(
        'ERR_OHTTP_REPLAY_CACHE_FULL',
        'too many requests in the replay window; retry later',
      );
    }
    const forgetAt = date + this.#windowMs;
    this.#seen.set(key, forgetAt);
    const second = Math.floor(forgetAt / 1000);
    const bucket = this.#expiring.get(second);
    if (bucket === undefined) this.#expiring.set(second, [key]);
    else bucket.push(key);
  }

  /** Forgets entries whose Date has left the window: their replays now fail the Date check. */
  #prune(now: number): void {
    // At most 2 × window / 1 s + 1 buckets exist, each dropped whole once its last instant passed.
    for (const [second, keys] of this.#expiring) {
      if (second * 1000 + 999 >= now) continue;
      for (const key of keys) this.#seen.delete(key);
      this.#expiring.delete(second);
    }
  }
}

/** The one `date` field of a request, as epoch milliseconds. */
function requestDate(headers: readonly Field[]): number {
  const dates = headers.filter(([name]) => name === 'date');
  const value = dates[0]?.[1];
  if (dates.length !== 1 || value === undefined) {
    throw new OhttpError('ERR_OHTTP_DATE_INVALID', 'the request must carry exactly one Date field');
  }
  if (value.length > MAX_DATE_FIELD_BYTES || !IMF_FIXDATE.test(value)) {
    throw new OhttpError('ERR_OHTTP_DATE_INVALID', 'the request Date is not an IMF-fixdate');
  }
  const time = Date.parse(value);
  // The round trip refuses what Date.parse would silently normalise: 31 Feb, a wrong weekday.
  if (!Number.isFinite(time) || new Date(time).toUTCString() !== value) {
    throw new OhttpError('ERR_OHTTP_DATE_INVALID', 'the request Date is not a valid date');
  }
  return time;
}
