/**
 * Enclave telemetry over the link (docs/protocols.md "Enclave telemetry"): which of the enclave's
 * log events may reach the parent, with which fields, and the bounds of a `telemetry.poll` answer.
 *
 * The parent relays opaque requests and must not learn which model a request used or how it fared
 * inside the encryption (DESIGN.md 2, the two error tiers). So the schema is an allow-list of
 * operator facts — model loads and their failure codes (operator actions the parent starts and
 * already sees answered), worker deaths and restarts, link errors outside request handling, cluster
 * key changes — each with named fields only. Anything else a log line carries stays in the
 * enclave, and an event not listed here never leaves it. No inference event is listed, nor any
 * field that could hold an inference's model, latency or inner error code.
 *
 * The enclave filters with {@link sanitizeTelemetryEvent} before it stores an event; the parent
 * runs the same function on what it decodes (a buggy enclave must not inflate its log or its
 * metrics' label sets).
 */

/** The type of one allowed field. */
export type TelemetryFieldType = 'string' | 'number';

/** Allowed events and, for each, its fields. */
export const TELEMETRY_EVENTS: ReadonlyMap<string, Readonly<Record<string, TelemetryFieldType>>> = new Map<
  string,
  Readonly<Record<string, TelemetryFieldType>>
>([
  ['enclave.started', { workers: 'number' }],
  ['model.loaded', { model: 'string', bytes: 'number' }],
  ['model.load_failed', { model: 'string', step: 'string', code: 'string' }],
  ['model.unloaded', { model: 'string' }],
  ['inference.worker_died', { slot: 'number', exitCode: 'number', delayMs: 'number', lost: 'number' }],
  ['inference.worker_replaced', { slot: 'number', restarts: 'number' }],
  ['inference.worker_abandoned', { slot: 'number', exitCode: 'number', restarts: 'number' }],
  // The request type and the error's class only; never its message (it might quote content).
  ['link.handler_failed', { type: 'string', error: 'string' }],
  ['link.frame_rejected', { connection: 'number', code: 'string' }],
  ['link.connection_refused', { connections: 'number' }],
  ['cluster.key_rotated', { epoch: 'number' }],
  ['cluster.key_installed', { epoch: 'number' }],
  ['cluster.key_shared', {}],
  ['enclave.draining', { inFlight: 'number' }],
  ['enclave.drained', { inFlight: 'number' }],
]);

/** Log levels an event may carry (pino's names). */
export const TELEMETRY_LEVELS = ['info', 'warn', 'error'] as const;
export type TelemetryLevel = (typeof TELEMETRY_LEVELS)[number];

/** Events one `telemetry.poll` answer carries at most (each ≤ ~400 bytes of CBOR: ≤ 26 KiB). */
export const MAX_TELEMETRY_EVENTS_PER_POLL = 64;

/**
 * Events the enclave keeps until they are polled: 512 × ≤ ~1 KiB (five short fields, strings
 * capped below) ≤ 512 KiB, whatever the parent does. Older events are overwritten and counted.
 */
export const TELEMETRY_BUFFER_EVENTS = 512;

/** A string field is cut to this many characters (model names are ≤ 128). */
export const MAX_TELEMETRY_STRING_LENGTH = 128;

/** One telemetry event as it crosses the link. */
export interface TelemetryEvent {
  /** 1, 2, 3… since the enclave started; a gap means overwritten events. */
  readonly seq: number;
  /** Milliseconds since the epoch, on the enclave's clock. */
  readonly time: number;
  readonly level: TelemetryLevel;
  readonly event: string;
  readonly details: Readonly<Record<string, string | number>>;
}

/**
 * The allowed fields of `details` for `event`, strings cut to {@link MAX_TELEMETRY_STRING_LENGTH}
 * and numbers required finite; undefined when the event is not allowed to leave the enclave.
 * `details` may be a plain object or a decoded CBOR map.
 */
export function sanitizeTelemetryEvent(
  event: string,
  details: Readonly<Record<string, unknown>> | ReadonlyMap<string, unknown> | undefined,
): Record<string, string | number> | undefined {
  const schema = TELEMETRY_EVENTS.get(event);
  if (schema === undefined) return undefined;
  const read = (key: string): unknown =>
    details === undefined
      ? undefined
      : details instanceof Map
        ? details.get(key)
        : (details as Record<string, unknown>)[key];
  const clean: Record<string, string | number> = {};
  for (const [key, type] of Object.entries(schema)) {
    const value = read(key);
    if (type === 'string' && typeof value === 'string')
      clean[key] = value.slice(0, MAX_TELEMETRY_STRING_LENGTH);
    else if (type === 'number' && typeof value === 'number' && Number.isFinite(value)) clean[key] = value;
  }
  return clean;
}

/** Whether `level` is one of {@link TELEMETRY_LEVELS}. */
export function isTelemetryLevel(level: unknown): level is TelemetryLevel {
  return typeof level === 'string' && (TELEMETRY_LEVELS as readonly string[]).includes(level);
}
