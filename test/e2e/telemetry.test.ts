/**
 * Enclave telemetry through the local stack (parent, enclave child process, KMS simulator): what a
 * production operator could not see on the enclave's console reaches the parent's pino log and
 * /metrics — a failing model load with its code, a worker crash — while nothing the parent must not
 * learn does: canaries in model weights and inference inputs never appear in its log or metrics,
 * and inferences on two models leave no model-linked count, latency or code there.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable, Writable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient } from '../../client/index.ts';
import type { NitroInferClient } from '../../client/index.ts';
import { createSealStream } from '../../shared/sealing/index.ts';
import type { V2InferenceRequest } from '../../shared/inference/v2.ts';
import { startLocalStack } from '../../sim/local-stack.ts';
import type { LocalStack } from '../../sim/local-stack.ts';
import { denseLayerModel } from '../../sim/onnx-builder.ts';

let directory = '';
let stack: LocalStack;
let client: NitroInferClient;
const parentLines: string[] = [];
const files: Record<string, string> = {};

// Canaries: random float32 weights in model alpha, random input values for every inference.
const weightCanary = Float32Array.from({ length: 6 }, () => 0.5 + randomBytes(3).readUIntBE(0, 3) / 2 ** 25);
const inputCanaries = Array.from({ length: 4 }, () => 1000 + randomBytes(3).readUIntBE(0, 3) / 2 ** 24);
const request: V2InferenceRequest = {
  inputs: [{ name: 'X', shape: [1, 8], datatype: 'FP32', data: [...inputCanaries, 0.25, 0.5, 0.75, 1] }],
};

function model(name: string, canary: boolean): Uint8Array {
  const weights = Float32Array.from({ length: 24 }, (_, index) => Math.cos(index) / 8);
  if (canary) weights.set(weightCanary, 0);
  return denseLayerModel(name, weights, new Float32Array(3));
}

async function seal(name: string, bytes: Uint8Array): Promise<string> {
  const sha384 = createHash('sha384').update(bytes).digest('hex');
  const sealer = createSealStream({ kms: stack.operator, keyArn: stack.keyArn, model: { name, sha384 } });
  Readable.from([bytes]).pipe(sealer);
  const file = path.join(directory, `${name}.sealed`);
  await writeFile(file, await buffer(sealer));
  return file;
}

async function adminLoad(name: string): Promise<{ status: number; code?: string }> {
  const response = await fetch(`${stack.url}/admin/models/${name}`, {
    method: 'PUT',
    headers: { authorization: `Bearer ${stack.adminToken}`, 'content-type': 'application/json' },
    body: JSON.stringify({ source: `file://${files[name]}` }),
  });
  const body = (await response.json()) as { error?: { code: string } };
  return { status: response.status, ...(body.error === undefined ? {} : { code: body.error.code }) };
}

async function adminUnload(name: string): Promise<number> {
  const response = await fetch(`${stack.url}/admin/models/${name}`, {
    method: 'DELETE',
    headers: { authorization: `Bearer ${stack.adminToken}` },
  });
  await response.arrayBuffer();
  return response.status;
}

/** The parent's records that came from the enclave's telemetry. */
function relayed(): Record<string, unknown>[] {
  return parentLines
    .map((line) => JSON.parse(line) as Record<string, unknown>)
    .filter((record) => record.source === 'enclave');
}

async function until(condition: () => boolean | Promise<boolean>, what: string): Promise<void> {
  for (let attempt = 0; attempt < 300; attempt++) {
    if (await condition()) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`gave up waiting for ${what}`);
}

/** Loads and unloads a marker model and waits for its unload in the parent's log: every earlier
 * enclave event has been relayed by then (events travel in order). */
let markers = 0;
async function flushTelemetry(): Promise<void> {
  const name = `marker${++markers}`;
  files[name] = await seal(name, model(name, false));
  expect(await adminLoad(name)).toMatchObject({ status: 200 });
  expect(await adminUnload(name)).toBeLessThan(300);
  await until(
    () => relayed().some((record) => record.event === 'model.unloaded' && record.model === name),
    `${name}'s unload to be relayed`,
  );
}

const metrics = async () => (await fetch(`${stack.url}/metrics`)).text();

beforeAll(async () => {
  directory = await mkdtemp(path.join(os.tmpdir(), 'ni-tel-'));
  stack = await startLocalStack({
    stateDirectory: directory,
    httpPort: 0,
    inferenceWorkers: 2,
    parent: { enclave: { telemetryIntervalMs: 250 } },
    enclaveEnv: { NITRO_INFER_TEST_WORKER_EXIT_ON_MODEL: 'poison' },
    logger: pino(
      { level: 'info' },
      new Writable({
        write(chunk, _encoding, done) {
          parentLines.push(...String(chunk).split('\n').filter(Boolean));
          done();
        },
      }),
    ),
  });
  for (const [name, canary] of [
    ['alpha', true],
    ['beta', false],
    ['poison', false],
  ] as const) {
    files[name] = await seal(name, model(name, canary));
  }
  files.broken = path.join(directory, 'broken.sealed');
  await writeFile(files.broken, randomBytes(4096));
  client = createClient({
    endpoint: stack.url,
    policy: { pcrs: await readFile(stack.files.pcrs, 'utf8'), roots: [stack.pki.rootCertificate] },
  });
}, 180_000);

afterAll(async () => {
  await stack?.close();
  await rm(directory, { recursive: true, force: true });
});

describe('enclave telemetry reaches the parent', () => {
  it('a failing model load inside the enclave appears in the parent log with its code', async () => {
    const failed = await adminLoad('broken');
    expect(failed.status).toBeGreaterThanOrEqual(400);
    await until(
      () => relayed().some((record) => record.event === 'model.load_failed' && record.model === 'broken'),
      'the failed load to be relayed',
    );
    const record = relayed().find((entry) => entry.event === 'model.load_failed')!;
    // Same schema as the parent's own records (pino's numeric level, epoch-ms time, msg).
    expect(record).toMatchObject({ level: 40, msg: 'model.load_failed', code: failed.code, model: 'broken' });
    expect(await metrics()).toContain(
      `nitro_infer_enclave_model_load_failures_total{code="${failed.code}"} 1`,
    );
  }, 60_000);

  it('a worker crash appears in the parent log and /metrics', async () => {
    expect(await adminLoad('poison')).toMatchObject({ status: 200 });
    await expect(client.infer('poison', request)).rejects.toMatchObject({ code: 'ERR_INFERENCE_FAILED' });
    await until(
      () => relayed().some((record) => record.event === 'inference.worker_replaced'),
      'the worker replacement to be relayed',
    );
    expect(relayed().find((record) => record.event === 'inference.worker_died')).toMatchObject({
      level: 40,
      exitCode: 70,
    });
    const text = await metrics();
    expect(text).toContain('nitro_infer_enclave_worker_restarts_total 1');
    expect(text).toMatch(/nitro_infer_enclave_events_total\{event="inference.worker_died",level="warn"\} 1/);
    expect(await adminUnload('poison')).toBeLessThan(300);
  }, 90_000);
});

describe('enclave telemetry tells the parent nothing it must not learn', () => {
  it('inferences on models A and B leave no model-linked count, latency or code; no canary leaks', async () => {
    expect(await adminLoad('alpha')).toMatchObject({ status: 200 });
    expect(await adminLoad('beta')).toMatchObject({ status: 200 });
    await flushTelemetry();
    const linesBefore = parentLines.length;
    const metricsBefore = (await metrics())
      .split('\n')
      .filter((line) => line.startsWith('nitro_infer_enclave_'));

    const results = [];
    for (let round = 0; round < 3; round++) results.push(await client.infer('alpha', request));
    results.push(await client.infer('beta', request));
    // A failure inside the encryption (an unknown input name): its inner code must not surface.
    await expect(
      client.infer('beta', { inputs: [{ name: 'nope', shape: [1, 1], datatype: 'FP32', data: [1] }] }),
    ).rejects.toBeDefined();
    await flushTelemetry();

    // Nothing the inferences did changed the enclave's counters: only the marker's load and unload.
    const metricsAfter = (await metrics())
      .split('\n')
      .filter((line) => line.startsWith('nitro_infer_enclave_'));
    const moved = metricsAfter.filter((line) => !metricsBefore.includes(line));
    for (const line of moved) {
      expect(line).toMatch(
        // (the all-models request gauge may be caught mid-request: an aggregate the parent sees anyway)
        /^nitro_infer_enclave_(events_total\{event="model\.(loaded|unloaded)"|memory_used_bytes|requests_in_flight)/,
      );
    }
    // No relayed record between the two markers names a model other than through a load/unload.
    const during = parentLines.slice(linesBefore).map((line) => JSON.parse(line) as Record<string, unknown>);
    for (const record of during.filter((entry) => entry.source === 'enclave')) {
      expect(record.event).toMatch(/^model\.(loaded|unloaded)$/);
      expect(String(record.model)).toMatch(/^marker/);
    }
    // Nor any parent line or metric: no inner code, no model-labelled inference facts.
    const text = await metrics();
    for (const name of ['alpha', 'beta']) {
      expect(
        during.filter((record) => JSON.stringify(record).includes(name)),
        `parent log lines naming ${name} during inference`,
      ).toEqual([]);
      expect(
        text.split('\n').filter((line) => line.includes(name) && /infer|latency|duration|request/.test(line)),
      ).toEqual([]);
    }
    expect(JSON.stringify(during)).not.toContain('ERR_INFERENCE_INPUT_INVALID');
    expect(text).not.toContain('ERR_INFERENCE_INPUT_INVALID');

    // The canary check: weights and inputs never in the parent's log or metrics...
    const needles: [string, Buffer][] = [
      [
        'weights (raw float32)',
        Buffer.from(weightCanary.buffer, weightCanary.byteOffset, weightCanary.byteLength),
      ],
      ...inputCanaries.map(
        (value, index) => [`input ${index}`, Buffer.from(JSON.stringify(value))] as [string, Buffer],
      ),
      ...(results[0]!.response.outputs[0]!.data as number[]).map(
        (value, index) => [`output ${index}`, Buffer.from(JSON.stringify(value))] as [string, Buffer],
      ),
    ];
    const haystack = Buffer.from(parentLines.join('\n') + text);
    for (const [name, needle] of needles) {
      expect({ name, found: haystack.includes(needle) }).toEqual({ name, found: false });
    }
    // ...but found where plaintext legitimately is, so the search can fail.
    const alphaBytes = model('alpha', true);
    expect(Buffer.from(alphaBytes).includes(needles[0]![1])).toBe(true);
    expect(Buffer.from(JSON.stringify(request)).includes(needles[1]![1])).toBe(true);
  }, 120_000);
});
