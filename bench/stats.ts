/** Shared measurement helpers for the benchmarks: percentiles, throughput, peak RSS, result files. */
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const BENCH_ROOT = fileURLToPath(new URL('.', import.meta.url));

/** Latency summary in milliseconds. */
export interface LatencySummary {
  readonly count: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly meanMs: number;
}

export function summarize(samplesMs: number[]): LatencySummary {
  const sorted = [...samplesMs].sort((a, b) => a - b);
  const at = (quantile: number) =>
    sorted[Math.min(sorted.length - 1, Math.floor(quantile * sorted.length))] ?? Number.NaN;
  const round = (value: number) => Math.round(value * 1000) / 1000;
  return {
    count: sorted.length,
    p50Ms: round(at(0.5)),
    p99Ms: round(at(0.99)),
    meanMs: round(sorted.reduce((sum, value) => sum + value, 0) / sorted.length),
  };
}

/** Runs `task` `total` times with `concurrency` in flight; returns per-call latencies and throughput. */
export async function load(
  total: number,
  concurrency: number,
  task: () => Promise<unknown>,
): Promise<{ latency: LatencySummary; perSecond: number }> {
  const samples: number[] = [];
  let started = 0;
  const begin = process.hrtime.bigint();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (started < total) {
        started++;
        const start = process.hrtime.bigint();
        await task();
        samples.push(Number(process.hrtime.bigint() - start) / 1e6);
      }
    }),
  );
  const seconds = Number(process.hrtime.bigint() - begin) / 1e9;
  return { latency: summarize(samples), perSecond: Math.round(total / seconds) };
}

/** Peak resident set size of this process so far, in MiB. */
export function peakRssMiB(): number {
  return Math.round(process.resourceUsage().maxRSS / 1024);
}

/** Machine facts recorded with every result. */
export function environment(): Record<string, string | number> {
  return {
    node: process.version,
    cpu: os.cpus()[0]?.model ?? 'unknown',
    cores: os.cpus().length,
    date: new Date().toISOString(),
  };
}

/** Writes `bench/results/<name>.json`. */
export function writeResult(name: string, result: unknown): string {
  const directory = path.join(BENCH_ROOT, 'results');
  mkdirSync(directory, { recursive: true });
  const file = path.join(directory, `${name}.json`);
  writeFileSync(file, `${JSON.stringify(result, null, 2)}\n`);
  return file;
}
