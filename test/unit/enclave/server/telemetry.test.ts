/**
 * The enclave's telemetry ring and `telemetry.poll` against a hostile parent: whatever it sends or
 * however often it polls, the ring holds at most its capacity (older events overwritten and
 * counted), an answer holds at most MAX_TELEMETRY_EVENTS_PER_POLL events, polls beyond the rate
 * limit are refused with a typed code, and only allow-listed events and fields are kept — nothing
 * about inferences.
 */
import { describe, expect, it } from 'vitest';
import { telemetryPollHandler } from '../../../../enclave/handlers/telemetry-poll.ts';
import type { Connection } from '../../../../enclave/server/link-server.ts';
import {
  EnclaveTelemetry,
  TELEMETRY_POLL_BURST,
  TELEMETRY_POLLS_PER_SECOND,
} from '../../../../enclave/server/telemetry.ts';
import { MAX_TELEMETRY_EVENTS_PER_POLL, TELEMETRY_BUFFER_EVENTS } from '../../../../shared/telemetry.ts';
import type { TelemetryEvent } from '../../../../shared/telemetry.ts';
import { codeOfAsync } from '../../../helpers/codes.ts';

const connection: Connection = { id: 1, onClose: () => {} };
const pool = { workers: { size: 2, alive: 2, restarts: 0 } };
const budget = { limitBytes: 1024, usedBytes: 512 };

function poller(telemetry: EnclaveTelemetry) {
  const handler = telemetryPollHandler(telemetry, pool, budget);
  return (fields: Record<string, unknown> = {}) => handler(new Map(Object.entries(fields)), connection);
}

describe('the telemetry ring', () => {
  it('holds at most its capacity however many events arrive, and counts the overwritten ones', () => {
    const telemetry = new EnclaveTelemetry();
    // A flood of events the parent can provoke (malformed frames): 40 rings' worth.
    const flood = TELEMETRY_BUFFER_EVENTS * 40;
    for (let index = 0; index < flood; index++) {
      telemetry.record('warn', 'link.frame_rejected', { connection: index, code: 'ERR_FRAME_MALFORMED' });
    }
    expect(telemetry.size).toBe(TELEMETRY_BUFFER_EVENTS);
    expect(telemetry.dropped).toBe(flood - TELEMETRY_BUFFER_EVENTS);
    const batch = telemetry.poll(0, Number.MAX_SAFE_INTEGER);
    expect(batch.events).toHaveLength(MAX_TELEMETRY_EVENTS_PER_POLL);
    // The oldest kept event follows the overwritten ones: the parent sees the gap too.
    expect(batch.events[0]!.seq).toBe(flood - TELEMETRY_BUFFER_EVENTS + 1);
    expect(batch.last).toBe(flood);
  });

  it('does not count events as dropped once a poll returned them', () => {
    const telemetry = new EnclaveTelemetry({ capacity: 4 });
    for (let index = 0; index < 4; index++)
      telemetry.record('info', 'model.unloaded', { model: `m${index}` });
    expect(telemetry.poll(0).events.map((event) => event.seq)).toEqual([1, 2, 3, 4]);
    for (let index = 0; index < 4; index++)
      telemetry.record('info', 'model.unloaded', { model: `n${index}` });
    expect(telemetry.dropped).toBe(0);
    telemetry.record('info', 'model.unloaded', { model: 'late' });
    expect(telemetry.dropped).toBe(1);
    expect(telemetry.poll(4).events.map((event) => event.seq)).toEqual([6, 7, 8, 9]);
  });

  it('keeps only allow-listed events and fields, strings cut short', () => {
    const telemetry = new EnclaveTelemetry();
    // Not telemetry: a per-request event, and request-linked fields on an allowed one.
    telemetry.record('info', 'inference.completed', { model: 'a', latencyMs: 12 });
    telemetry.record('info', 'link.connected', { connection: 1 });
    telemetry.record('warn', 'model.load_failed', {
      model: 'x'.repeat(1000),
      step: 'end',
      code: 'ERR_DECRYPT_FAILED',
      reason: 'the plaintext said hello',
      latencyMs: 5,
    });
    telemetry.record('error', 'link.handler_failed', { type: 'ohttp', error: 'TypeError' });
    telemetry.record('error', 'link.handler_failed', { type: 'status', error: 'TypeError' });
    const events = telemetry.poll(0).events;
    expect(events.map((event) => event.event)).toEqual([
      'model.load_failed',
      'link.handler_failed',
      'link.handler_failed',
    ]);
    expect(events[0]!.details).toEqual({ model: 'x'.repeat(128), step: 'end', code: 'ERR_DECRYPT_FAILED' });
    // A failure inside an OHTTP request is a fact about its content: the class stays inside.
    expect(events[1]!.details).toEqual({ type: 'ohttp' });
    expect(events[2]!.details).toEqual({ type: 'status', error: 'TypeError' });
  });
});

describe('telemetry.poll', () => {
  it('answers with events, gauges and the boot id, at most MAX_TELEMETRY_EVENTS_PER_POLL', async () => {
    const telemetry = new EnclaveTelemetry();
    for (let index = 0; index < 100; index++) telemetry.record('info', 'model.unloaded', { model: 'm' });
    const answer = await poller(telemetry)({ after: 10 });
    expect(answer).toMatchObject({
      boot: telemetry.boot,
      last: 100,
      dropped: 0,
      memory: budget,
      workers: pool.workers,
    });
    const events = answer.events as TelemetryEvent[];
    expect(events).toHaveLength(MAX_TELEMETRY_EVENTS_PER_POLL);
    expect(events[0]!.seq).toBe(11);
  });

  it.each([
    ['a negative cursor', { after: -1 }],
    ['a text cursor', { after: 'x'.repeat(10_000) }],
    ['a fractional cursor', { after: 1.5 }],
    ['a huge max', { max: 1e9 }],
    ['a zero max', { max: 0 }],
  ])('refuses %s with ERR_LINK_REQUEST_INVALID', async (_name, fields) => {
    expect(await codeOfAsync(() => poller(new EnclaveTelemetry())(fields))).toBe('ERR_LINK_REQUEST_INVALID');
  });

  it('refuses poll spam with ERR_LINK_OVERLOADED, per connection, and serves again once the bucket refills', async () => {
    let now = 1_000_000;
    const telemetry = new EnclaveTelemetry({ clock: () => now });
    const poll = poller(telemetry);
    const codes = [];
    for (let index = 0; index < 100; index++) codes.push(await codeOfAsync(() => poll()));
    expect(codes.filter((code) => code === 'accepted')).toHaveLength(TELEMETRY_POLL_BURST);
    expect(new Set(codes.slice(TELEMETRY_POLL_BURST))).toEqual(new Set(['ERR_LINK_OVERLOADED']));
    // Another connection's polls are not starved by this one's spam.
    const other = telemetryPollHandler(telemetry, pool, budget);
    expect(await codeOfAsync(() => other(new Map(), { id: 2, onClose: () => {} }))).toBe('accepted');
    now += 1000 / TELEMETRY_POLLS_PER_SECOND;
    expect(await codeOfAsync(() => poll())).toBe('accepted');
    expect(await codeOfAsync(() => poll())).toBe('ERR_LINK_OVERLOADED');
  });
});
