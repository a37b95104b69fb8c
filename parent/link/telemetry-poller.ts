/**
 * Enclave telemetry, the parent's half (docs/protocols.md "Enclave telemetry"): every few seconds
 * while the link is ready, `telemetry.poll` fetches the operator events the enclave recorded since
 * the last poll, and each one goes through the parent's pino logger (`source: "enclave"`, same
 * schema as the parent's own records) and into /metrics, with the enclave's memory and workers.
 *
 * The answer comes from the enclave and is bounded and checked like any link input: its header was
 * decoded under RESPONSE_HEADER_LIMITS (cbor-scan), more than MAX_TELEMETRY_EVENTS_PER_POLL events
 * reject the whole answer, and each event passes the same allow-list the enclave applied
 * (shared/telemetry.ts), so label sets and log fields stay bounded whatever arrives.
 */
import { ERROR_CODES } from '../../shared/errors.ts';
import {
  MAX_TELEMETRY_EVENTS_PER_POLL,
  isTelemetryLevel,
  sanitizeTelemetryEvent,
} from '../../shared/telemetry.ts';
import type { ParentMetrics } from '../metrics.ts';
import type { EnclaveLink, LinkFields, LinkLog } from './enclave-link.ts';

/** The parent polls this often unless configured (enclave.telemetryIntervalMs). */
export const DEFAULT_TELEMETRY_INTERVAL_MS = 5_000;

/** Polls in a row while the enclave has more (a backlog of 4 × 64 events per interval drains). */
const MAX_POLLS_PER_TICK = 4;

const KNOWN_CODES: ReadonlySet<string> = new Set(ERROR_CODES);

/** Options of {@link TelemetryPoller}. */
export interface TelemetryPollerOptions {
  readonly link: EnclaveLink;
  readonly log: LinkLog;
  readonly metrics: ParentMetrics;
  readonly intervalMs?: number;
  /** Told when the enclave starts draining (`enclave.draining`) and when a new enclave serves. */
  readonly onEnclaveDraining?: (draining: boolean) => void;
}

export class TelemetryPoller {
  readonly #options: TelemetryPollerOptions;
  #timer: NodeJS.Timeout | undefined;
  #polling: Promise<void> | undefined;
  #boot: string | undefined;
  #cursor = 0;
  #dropped = 0;
  #restarts = 0;

  constructor(options: TelemetryPollerOptions) {
    this.#options = options;
  }

  start(): void {
    this.#timer = setInterval(
      () => void this.poll(),
      this.#options.intervalMs ?? DEFAULT_TELEMETRY_INTERVAL_MS,
    );
    this.#timer.unref();
    // A (re)connected enclave's start-up events arrive at once, not an interval later.
    this.#options.link.on('state', (state) => {
      if (state === 'ready') void this.poll();
    });
  }

  /** One round of polls (the timer's; tests call it directly). Never throws. */
  poll(): Promise<void> {
    this.#polling ??= this.#round().finally(() => {
      this.#polling = undefined;
    });
    return this.#polling;
  }

  close(): void {
    clearInterval(this.#timer);
  }

  async #round(): Promise<void> {
    for (let round = 0; round < MAX_POLLS_PER_TICK; round++) {
      if (this.#options.link.state !== 'ready') return;
      let answer: LinkFields;
      try {
        answer = await this.#options.link.request(
          'telemetry.poll',
          { after: this.#cursor },
          { timeoutMs: 5_000 },
        );
      } catch {
        return; // the link's own events say why; the next tick tries again
      }
      const more = this.#take(answer);
      if (!more) return;
    }
  }

  /** Applies one answer; true when the enclave has more events. */
  #take(answer: LinkFields): boolean {
    const { log, metrics } = this.#options;
    const boot = answer.get('boot');
    const last = answer.get('last');
    const dropped = answer.get('dropped');
    const events = answer.get('events');
    if (
      typeof boot !== 'string' ||
      boot.length > 64 ||
      !isCount(last) ||
      !isCount(dropped) ||
      !Array.isArray(events) ||
      events.length > MAX_TELEMETRY_EVENTS_PER_POLL
    ) {
      log('warn', 'enclave.telemetry_invalid', {});
      return false;
    }
    if (boot !== this.#boot) {
      // A new enclave process: its sequence numbers and counters start over.
      this.#boot = boot;
      this.#cursor = 0;
      this.#dropped = 0;
      this.#restarts = 0;
      this.#options.onEnclaveDraining?.(false);
    }
    if (dropped > this.#dropped) {
      metrics.enclaveTelemetryDropped.inc(dropped - this.#dropped);
      log('warn', 'enclave.telemetry_dropped', { source: 'enclave', dropped: dropped - this.#dropped });
      this.#dropped = dropped;
    }
    for (const raw of events) {
      const event = entry(raw, 'event');
      const level = entry(raw, 'level');
      const seq = entry(raw, 'seq');
      const time = entry(raw, 'time');
      if (typeof event !== 'string' || !isTelemetryLevel(level) || !isCount(seq) || seq <= this.#cursor)
        continue;
      const details = sanitizeTelemetryEvent(event, asFields(entry(raw, 'details')));
      this.#cursor = seq;
      if (details === undefined) continue;
      log(level, event, {
        source: 'enclave',
        seq,
        ...(isCount(time) ? { enclaveTime: time } : {}),
        ...details,
      });
      metrics.enclaveEvents.inc({ event, level });
      if (event === 'enclave.draining') this.#options.onEnclaveDraining?.(true);
      if (event === 'model.load_failed') {
        const code =
          typeof details.code === 'string' && KNOWN_CODES.has(details.code) ? details.code : 'ERR_INTERNAL';
        metrics.enclaveModelLoadFailures.inc({ code });
      }
    }
    this.#gauges(answer);
    return events.length === MAX_TELEMETRY_EVENTS_PER_POLL && this.#cursor < last;
  }

  #gauges(answer: LinkFields): void {
    const { metrics } = this.#options;
    const memory = answer.get('memory');
    const limit = entry(memory, 'limitBytes');
    const used = entry(memory, 'usedBytes');
    if (isCount(limit)) metrics.enclaveMemoryLimit.set(limit);
    if (isCount(used)) metrics.enclaveMemoryUsed.set(used);
    const workers = answer.get('workers');
    const size = entry(workers, 'size');
    const alive = entry(workers, 'alive');
    const restarts = entry(workers, 'restarts');
    if (isCount(size)) metrics.enclaveWorkers.set({ state: 'configured' }, size);
    if (isCount(alive)) metrics.enclaveWorkers.set({ state: 'alive' }, alive);
    const inFlight = entry(answer.get('requests'), 'inFlight');
    if (isCount(inFlight)) metrics.enclaveRequestsInFlight.set(inFlight);
    if (isCount(restarts) && restarts > this.#restarts) {
      metrics.enclaveWorkerRestarts.inc(restarts - this.#restarts);
      this.#restarts = restarts;
    }
  }
}

function isCount(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

/** A member of a decoded CBOR map (or plain object); undefined for anything else. */
function entry(container: unknown, key: string): unknown {
  if (container instanceof Map) return container.get(key);
  if (typeof container === 'object' && container !== null && !Array.isArray(container))
    return (container as Record<string, unknown>)[key];
  return undefined;
}

function asFields(
  value: unknown,
): ReadonlyMap<string, unknown> | Readonly<Record<string, unknown>> | undefined {
  if (value instanceof Map) return value as ReadonlyMap<string, unknown>;
  if (typeof value === 'object' && value !== null && !Array.isArray(value))
    return value as Record<string, unknown>;
  return undefined;
}
