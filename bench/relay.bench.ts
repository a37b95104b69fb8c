/**
 * The parent's relay alone (issue 4): HTTP client → parent (Fastify, OHTTP route) → link over a
 * Unix socket → echo enclave (own process) → back, against a bare Fastify handler that answers
 * itself with the same body. 1 KiB and 1 MiB bodies at concurrency 1/16/64; the load generator
 * runs in its own process. Reports p50/p99, requests/s, MB/s of request bodies and the ratios.
 *
 * Placement (issue 11): with `--pin on` the echo enclave runs on the enclave cores, and the parent,
 * the bare baseline (both in this process) and the load generators on the host cores; `--pin both`
 * (the default) measures pinned, then unpinned. Per placement: closed loops at c=1/16/64 and, for
 * `--open-loop f1,f2`, open loops at those fractions of the relay's c=64 throughput, the bare
 * server offered the same rates (latency from the scheduled send time); and `autocannon`, a maintained load generator, at 1 MiB c=16 on both
 * servers (the issue's table row), so the number does not rest on our generator alone.
 *
 * Run: npm run bench:relay [-- --pin both|on|off --open-loop 0.5,0.9]
 *      (REQUESTS / LARGE_REQUESTS set the calls per load; writes bench/results/relay.json)
 */
import { execFile, spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import Fastify from 'fastify';
import { AdminTokens } from '../parent/admin-tokens.ts';
import { buildParentApp } from '../parent/app.ts';
import { parseArtifactSource } from '../parent/artifacts/artifact-source.ts';
import { EnclaveLink } from '../parent/link/enclave-link.ts';
import { ParentMetrics } from '../parent/metrics.ts';
import { ModelRegistry } from '../parent/model-registry.ts';
import { connectTransport } from '../transport/index.ts';
import { affinityOf, parseBenchOptions, peakRssOf, pinned, setAffinity } from './placement.ts';
import { environment, ratio, writeResult } from './stats.ts';
import type { LatencySummary, LoadResult } from './stats.ts';

const run = promisify(execFile);
const HERE = fileURLToPath(new URL('.', import.meta.url));
const TSX = path.join(HERE, '..', 'node_modules', '.bin', 'tsx');
const AUTOCANNON = path.join(HERE, '..', 'node_modules', 'autocannon', 'autocannon.js');
const options = parseBenchOptions(process.argv.slice(2));
const directory = await mkdtemp(path.join(os.tmpdir(), 'ni-relay-'));
const socketPath = path.join(directory, 'echo.sock');

setAffinity(process.pid, options.placements[0]!.host);
const echo = spawn(TSX, [path.join(HERE, 'echo-enclave.ts'), socketPath], {
  stdio: ['ignore', 'pipe', 'inherit'],
});
await new Promise<void>((resolve) => echo.stdout.once('data', () => resolve()));
const echoPid = echo.pid!;

const link = new EnclaveLink({ connect: () => connectTransport(`unix:${socketPath}`) });
const limits = {
  ohttpBodyLimitBytes: 2 * 1024 * 1024,
  adminBodyLimitBytes: 16 * 1024,
  requestTimeoutMs: 60_000,
  inferenceTimeoutMs: 30_000,
  rateLimit: { max: 100_000_000, windowMs: 60_000 },
};
const parent = await buildParentApp({
  link,
  models: new ModelRegistry({ link, stores: { s3: undefined, file: undefined }, log: () => {} }),
  tokens: AdminTokens.parse(JSON.stringify({ tokens: ['x'.repeat(32)] }), 'bench'),
  metrics: new ParentMetrics(),
  logger: false,
  limits,
  parseSource: (source) => parseArtifactSource(source, { requireVersion: true, allowFile: false }),
});
link.start();
await link.ready();
const parentUrl = `${await parent.listen({ host: '127.0.0.1', port: 0 })}/.well-known/ohttp-gateway`;

// The physical limit of this HTTP stack: the same server framework answering by itself.
const bare = Fastify({ logger: false, bodyLimit: limits.ohttpBodyLimitBytes });
bare.addContentTypeParser('message/ohttp-req', { parseAs: 'buffer' }, (_request, body, done) =>
  done(null, body),
);
bare.post('/.well-known/ohttp-gateway', async (request, reply) =>
  reply.type('message/ohttp-res').send(request.body as Buffer),
);
const bareUrl = `${await bare.listen({ host: '127.0.0.1', port: 0 })}/.well-known/ohttp-gateway`;

interface Measured {
  readonly results: { load: string; result: LoadResult }[];
  readonly peakRssMiB: number;
}

async function measure(cores: string, url: string, bytes: number, total: number, loads: string[]) {
  const [command, argv] = pinned(cores, TSX, [
    path.join(HERE, 'http-load.ts'),
    url,
    String(bytes),
    String(total),
    loads.join(','),
  ]);
  const { stdout } = await run(command, argv, { maxBuffer: 1 << 20 });
  return JSON.parse(stdout) as Measured;
}

/** autocannon in its own process on `cores`: closed loop, `connections` in flight, `total` requests. */
async function autocannon(cores: string, url: string, bodyFile: string, total: number, connections: number) {
  const [command, argv] = pinned(cores, process.execPath, [
    AUTOCANNON,
    '--json',
    '-c',
    String(connections),
    '-a',
    String(total),
    '-m',
    'POST',
    '-H',
    'content-type=message/ohttp-req',
    '-i',
    bodyFile,
    url,
  ]);
  const { stdout } = await run(command, argv, { maxBuffer: 1 << 24 });
  const report = JSON.parse(stdout) as {
    latency: { p50: number; p99: number; average: number };
    requests: { total: number };
    duration: number;
    errors: number;
    non2xx: number;
  };
  if (report.errors !== 0 || report.non2xx !== 0)
    throw new Error(`autocannon: ${report.errors} errors, ${report.non2xx} non-2xx replies`);
  return {
    latency: { count: report.requests.total, p50Ms: report.latency.p50, p99Ms: report.latency.p99 },
    perSecond: Math.round(report.requests.total / report.duration),
  };
}

const largeBody = path.join(directory, 'body-1MiB.bin');
await writeFile(largeBody, randomBytes(1024 * 1024));
const rows: Record<string, unknown>[] = [];
const autocannonRows: Record<string, unknown>[] = [];
const placements: Record<string, unknown>[] = [];
let loadPeakRssMiB = 0;
for (const placement of options.placements) {
  setAffinity(process.pid, placement.host);
  setAffinity(echoPid, placement.enclave);
  placements.push({
    pin: placement.mode,
    enclaveCores: placement.enclave,
    hostCores: placement.host,
    echoEnclaveThreads: affinityOf(echoPid),
    parentThreads: affinityOf(process.pid),
  });
  for (const bytes of [1024, 1024 * 1024]) {
    const total =
      bytes === 1024 ? Number(process.env.REQUESTS ?? 4000) : Number(process.env.LARGE_REQUESTS ?? 400);
    const loads = [
      'closed:1',
      'closed:16',
      'closed:64',
      ...options.openLoopFractions.map((fraction) => `open:${fraction}x`),
    ];
    // The open-loop rates are fractions of the relay's own c=64 throughput (a rate it can
    // sustain); the bare server is offered the same rates.
    const relayed = await measure(placement.host, parentUrl, bytes, total, loads);
    const direct = await measure(
      placement.host,
      bareUrl,
      bytes,
      total,
      relayed.results.map((entry) => entry.load),
    );
    loadPeakRssMiB = Math.max(loadPeakRssMiB, direct.peakRssMiB, relayed.peakRssMiB);
    direct.results.forEach(({ load, result }, index) => {
      const relay = relayed.results[index]!.result;
      rows.push({
        pin: placement.mode,
        body: bytes === 1024 ? '1 KiB' : '1 MiB',
        load,
        bare: result,
        relay,
        addedP50Ms: Math.round((relay.latency.p50Ms - result.latency.p50Ms) * 1000) / 1000,
        throughputRatio: ratio(relay.perSecond, result.perSecond),
        relayMBps: Math.round((relay.perSecond * bytes) / 1e6),
        bareMBps: Math.round((result.perSecond * bytes) / 1e6),
      });
    });
  }
  const total = Number(process.env.LARGE_REQUESTS ?? 400);
  const bare = await autocannon(placement.host, bareUrl, largeBody, total, 16);
  const relay = await autocannon(placement.host, parentUrl, largeBody, total, 16);
  autocannonRows.push({
    pin: placement.mode,
    body: '1 MiB',
    load: 'closed:16',
    bare,
    relay,
    throughputRatio: ratio(relay.perSecond, bare.perSecond),
    relayMBps: Math.round((relay.perSecond * 1024 * 1024) / 1e6),
    bareMBps: Math.round((bare.perSecond * 1024 * 1024) / 1e6),
  });
}
const echoPeakRssMiB = peakRssOf(echoPid);

link.close();
await parent.close();
await bare.close();
echo.kill('SIGTERM');
await rm(directory, { recursive: true, force: true });

const env = environment();
const peakRssMiB = {
  parentAndBare: peakRssOf('self'),
  echoEnclave: echoPeakRssMiB,
  loadGenerator: loadPeakRssMiB,
};
const file = writeResult('relay', {
  environment: env,
  placements,
  peakRssMiB,
  rows,
  autocannon: autocannonRows,
});
console.log(`relay — Node ${env.node}, ${env.cpu}, ${env.cores} cores`);
for (const placement of placements)
  console.log(
    `pin ${String(placement.pin)}: echo enclave on ${String(placement.enclaveCores)}, parent + bare + load on ${String(placement.hostCores)}`,
  );
console.log(
  'pin  body    load          bare p50/p99 ms   relay p50/p99 ms  added p50  bare req/s  relay req/s  relay MB/s  thr ×',
);
for (const row of rows as {
  pin: string;
  body: string;
  load: string;
  bare: { latency: LatencySummary; perSecond: number };
  relay: { latency: LatencySummary; perSecond: number };
  addedP50Ms: number;
  relayMBps: number;
  throughputRatio: number;
}[]) {
  console.log(
    `${row.pin.padEnd(4)} ${row.body.padEnd(7)} ${row.load.padEnd(13)} ${`${row.bare.latency.p50Ms}/${row.bare.latency.p99Ms}`.padEnd(16)} ${`${row.relay.latency.p50Ms}/${row.relay.latency.p99Ms}`.padEnd(17)} ${String(row.addedP50Ms).padStart(9)}  ${String(row.bare.perSecond).padStart(10)}  ${String(row.relay.perSecond).padStart(11)}  ${String(row.relayMBps).padStart(10)}  ${String(row.throughputRatio).padStart(5)}`,
  );
}
for (const row of autocannonRows as {
  pin: string;
  bare: { latency: { p50Ms: number; p99Ms: number }; perSecond: number };
  relay: { latency: { p50Ms: number; p99Ms: number }; perSecond: number };
  bareMBps: number;
  relayMBps: number;
  throughputRatio: number;
}[])
  console.log(
    `autocannon, pin ${row.pin}, 1 MiB c=16: bare ${row.bareMBps} MB/s (p50 ${row.bare.latency.p50Ms} ms, p99 ${row.bare.latency.p99Ms} ms), relay ${row.relayMBps} MB/s (p50 ${row.relay.latency.p50Ms} ms, p99 ${row.relay.latency.p99Ms} ms), ratio ${row.throughputRatio}`,
  );
console.log(
  `peak RSS MiB: parent + bare ${peakRssMiB.parentAndBare}, echo enclave ${peakRssMiB.echoEnclave}, load generator ${peakRssMiB.loadGenerator}`,
);
console.log(`written to ${file}`);
