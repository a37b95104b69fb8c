/**
 * The parent's relay alone (issue 4): HTTP client → parent (Fastify, OHTTP route) → link over a
 * Unix socket → echo enclave (own process) → back, against a bare Fastify handler that answers
 * itself with the same body. 1 KiB and 1 MiB bodies at concurrency 1/16/64; the load generator
 * runs in its own process. Reports p50/p99, requests/s, MB/s of request bodies and the ratios.
 *
 * Run: npm run bench:relay   (writes bench/results/relay.json)
 */
import { execFile, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
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
import { environment, peakRssMiB, writeResult } from './stats.ts';
import type { LatencySummary } from './stats.ts';

const run = promisify(execFile);
const HERE = fileURLToPath(new URL('.', import.meta.url));
const TSX = path.join(HERE, '..', 'node_modules', '.bin', 'tsx');
const directory = await mkdtemp(path.join(os.tmpdir(), 'ni-relay-'));
const socketPath = path.join(directory, 'echo.sock');

const echo = spawn(TSX, [path.join(HERE, 'echo-enclave.ts'), socketPath], {
  stdio: ['ignore', 'pipe', 'inherit'],
});
await new Promise<void>((resolve) => echo.stdout.once('data', () => resolve()));

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

async function measure(url: string, bytes: number, total: number, concurrency: number) {
  const { stdout } = await run(
    TSX,
    [path.join(HERE, 'http-load.ts'), url, String(bytes), String(total), String(concurrency)],
    {
      maxBuffer: 1 << 20,
    },
  );
  return JSON.parse(stdout) as { latency: LatencySummary; perSecond: number };
}

const rows: Record<string, unknown>[] = [];
for (const bytes of [1024, 1024 * 1024]) {
  for (const concurrency of [1, 16, 64]) {
    const total =
      bytes === 1024 ? Number(process.env.REQUESTS ?? 4000) : Number(process.env.LARGE_REQUESTS ?? 400);
    const direct = await measure(bareUrl, bytes, total, concurrency);
    const relayed = await measure(parentUrl, bytes, total, concurrency);
    rows.push({
      body: bytes === 1024 ? '1 KiB' : '1 MiB',
      concurrency,
      bare: direct,
      relay: relayed,
      addedP50Ms: Math.round((relayed.latency.p50Ms - direct.latency.p50Ms) * 1000) / 1000,
      throughputRatio: Math.round((relayed.perSecond / direct.perSecond) * 100) / 100,
      relayMBps: Math.round((relayed.perSecond * bytes) / 1e6),
      bareMBps: Math.round((direct.perSecond * bytes) / 1e6),
    });
  }
}

link.close();
await parent.close();
await bare.close();
echo.kill('SIGTERM');
await rm(directory, { recursive: true, force: true });

const file = writeResult('relay', { environment: environment(), peakRssMiB: peakRssMiB(), rows });
console.log(
  'body    conc  bare p50/p99 ms   relay p50/p99 ms  added p50  bare req/s  relay req/s  relay MB/s',
);
for (const row of rows as {
  body: string;
  concurrency: number;
  bare: { latency: LatencySummary; perSecond: number };
  relay: { latency: LatencySummary; perSecond: number };
  addedP50Ms: number;
  relayMBps: number;
}[]) {
  console.log(
    `${row.body.padEnd(7)} ${String(row.concurrency).padStart(4)}  ${`${row.bare.latency.p50Ms}/${row.bare.latency.p99Ms}`.padEnd(16)} ${`${row.relay.latency.p50Ms}/${row.relay.latency.p99Ms}`.padEnd(17)} ${String(row.addedP50Ms).padStart(9)}  ${String(row.bare.perSecond).padStart(10)}  ${String(row.relay.perSecond).padStart(11)}  ${String(row.relayMBps).padStart(10)}`,
  );
}
console.log(`written to ${file}`);
