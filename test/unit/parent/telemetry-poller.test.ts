/**
 * The parent's half of enclave telemetry against a stand-in enclave: each polled event reaches the
 * parent's log (`source: "enclave"`) and /metrics; an answer that breaks the bounds is dropped
 * whole; events or fields outside the allow-list never reach a log line or a label, whatever the
 * enclave sends; a new boot id starts the cursor over.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { EnclaveLink } from '../../../parent/link/enclave-link.ts';
import { TelemetryPoller } from '../../../parent/link/telemetry-poller.ts';
import { ParentMetrics } from '../../../parent/metrics.ts';
import { MAX_TELEMETRY_EVENTS_PER_POLL } from '../../../shared/telemetry.ts';
import { connectTransport } from '../../../transport/index.ts';
import { FakeEnclave } from '../../helpers/fake-enclave.ts';

let enclave: FakeEnclave;
let link: EnclaveLink;
let answers: Record<string, unknown>[];
const afters: number[] = [];
const lines: { level: string; event: string; details: Record<string, unknown> }[] = [];

const event = (seq: number, name: string, details: Record<string, unknown>, level = 'warn') => ({
  seq,
  time: 1_700_000_000_000 + seq,
  level,
  event: name,
  details,
});
const answer = (events: unknown[], extra: Record<string, unknown> = {}) => ({
  boot: 'b1',
  events,
  last: events.length,
  dropped: 0,
  memory: { limitBytes: 1000, usedBytes: 250 },
  workers: { size: 2, alive: 1, restarts: 3 },
  ...extra,
});

beforeEach(async () => {
  answers = [];
  afters.length = 0;
  lines.length = 0;
  enclave = await FakeEnclave.create();
  enclave.handlers.set('telemetry.poll', async (fields) => {
    afters.push(fields.get('after') as number);
    return answers.shift() ?? answer([], { last: 0 });
  });
  await enclave.start();
  link = new EnclaveLink({ connect: () => connectTransport(`unix:${enclave.socketPath}`) });
  link.start();
  await link.ready();
});
afterEach(async () => {
  link.close();
  await enclave.dispose();
});

function start() {
  const metrics = new ParentMetrics();
  const poller = new TelemetryPoller({
    link,
    metrics,
    log: (level, name, details) => lines.push({ level, event: name, details: details ?? {} }),
  });
  return { poller, metrics };
}

describe('TelemetryPoller', () => {
  it('logs each event with its fields and counts it in /metrics, with the gauges', async () => {
    const { poller, metrics } = start();
    answers.push(
      answer([
        event(1, 'model.load_failed', { model: 'broken', step: 'end', code: 'ERR_ARTIFACT_INVALID' }),
        event(2, 'inference.worker_died', { slot: 0, exitCode: 1, delayMs: 200, lost: 1 }),
      ]),
    );
    await poller.poll();
    expect(lines).toEqual([
      {
        level: 'warn',
        event: 'model.load_failed',
        details: {
          source: 'enclave',
          seq: 1,
          enclaveTime: 1_700_000_000_001,
          model: 'broken',
          step: 'end',
          code: 'ERR_ARTIFACT_INVALID',
        },
      },
      expect.objectContaining({ event: 'inference.worker_died' }),
    ]);
    const text = await metrics.registry.metrics();
    expect(text).toContain('nitro_infer_enclave_model_load_failures_total{code="ERR_ARTIFACT_INVALID"} 1');
    expect(text).toContain('nitro_infer_enclave_events_total{event="inference.worker_died",level="warn"} 1');
    expect(text).toContain('nitro_infer_enclave_memory_used_bytes 250');
    expect(text).toContain('nitro_infer_enclave_workers{state="alive"} 1');
    expect(text).toContain('nitro_infer_enclave_worker_restarts_total 3');

    // The next poll asks only for what is new.
    await poller.poll();
    expect(afters).toEqual([0, 2]);
  });

  it('drops an answer with more than MAX_TELEMETRY_EVENTS_PER_POLL events whole', async () => {
    const { poller } = start();
    const many = Array.from({ length: MAX_TELEMETRY_EVENTS_PER_POLL + 1 }, (_, index) =>
      event(index + 1, 'model.unloaded', { model: 'm' }),
    );
    answers.push(answer(many));
    await poller.poll();
    expect(lines.map((line) => line.event)).toEqual(['enclave.telemetry_invalid']);
  });

  it('passes neither unknown events nor unknown fields to the log or the labels', async () => {
    const { poller, metrics } = start();
    answers.push(
      answer([
        event(1, 'inference.completed', { model: 'a', latencyMs: 3 }, 'info'),
        event(2, 'model.load_failed', { model: 'a', code: 'ERR_MADE_UP', latencyMs: 3, input: 'secret' }),
        event(3, 'link.handler_failed', { type: 'status', error: 'TypeError' }, 'fatal'),
      ]),
    );
    await poller.poll();
    expect(lines).toEqual([
      {
        level: 'warn',
        event: 'model.load_failed',
        details: expect.not.objectContaining({ latencyMs: expect.anything(), input: expect.anything() }),
      },
    ]);
    const text = await metrics.registry.metrics();
    expect(text).not.toContain('inference.completed');
    expect(text).not.toContain('ERR_MADE_UP');
    expect(text).toContain('nitro_infer_enclave_model_load_failures_total{code="ERR_INTERNAL"} 1');
  });

  it('starts over after the enclave restarts (a new boot id) and counts dropped events', async () => {
    const { poller, metrics } = start();
    answers.push(
      answer([event(1, 'model.unloaded', { model: 'm' }), event(2, 'model.unloaded', { model: 'm' })]),
    );
    await poller.poll();
    answers.push(answer([event(1, 'enclave.started', { workers: 2 }, 'info')], { boot: 'b2', dropped: 5 }));
    await poller.poll();
    await poller.poll();
    expect(afters).toEqual([0, 2, 1]);
    expect(lines.map((line) => line.event)).toContain('enclave.started');
    expect(await metrics.registry.metrics()).toContain('nitro_infer_enclave_telemetry_dropped_total 5');
  });
});
