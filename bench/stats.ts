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

/** How a load generator offers its calls. */
export type LoadSpec =
  | { readonly kind: 'closed'; readonly concurrency: number }
  | { readonly kind: 'open'; readonly ratePerSecond: number };

/** `closed:8` (or a bare `8`) or `open:120` (calls per second). */
export function parseLoadSpec(text: string): LoadSpec {
  const match = /^(?:(closed|open):)?(\d+(?:\.\d+)?)$/.exec(text);
  const value = Number(match?.[2]);
  if (match === null || !(value > 0))
    throw new Error(`not a load: ${text} (closed:<concurrency> or open:<rate>)`);
  return match[1] === 'open'
    ? { kind: 'open', ratePerSecond: value }
    : { kind: 'closed', concurrency: Math.max(1, Math.round(value)) };
}

export function formatLoadSpec(spec: LoadSpec): string {
  return spec.kind === 'open' ? `open:${spec.ratePerSecond}` : `closed:${spec.concurrency}`;
}

/** What one load run measured. Open-loop runs also say how far behind schedule the generator was. */
export interface LoadResult {
  readonly latency: LatencySummary;
  readonly perSecond: number;
  readonly offeredPerSecond?: number;
  readonly maxInFlight?: number;
  /** p99 of how late calls started against their schedule (the generator's own lag, already in latency). */
  readonly startLagP99Ms?: number;
  /**
   * This process's CPU time (user + system, every thread) per call over the run, in ms (driveAll):
   * on a shared machine a steadier measure of what the caller costs than its latency.
   */
  readonly cpuMsPerRequest?: number;
}

/** A clock in milliseconds and a way to wait; injectable so the scheduler can be tested without time. */
export interface Clock {
  now(): number;
  sleep(ms: number): Promise<void>;
}

export const realClock: Clock = {
  now: () => Number(process.hrtime.bigint()) / 1e6,
  // Zero or less: still yield (to I/O, not a ≥1 ms timer), so finished calls are timestamped promptly.
  sleep: (ms) =>
    new Promise((resolve) => (ms >= 1 ? setTimeout(resolve, Math.floor(ms)) : setImmediate(resolve))),
};

/**
 * Open loop: call `index` is due at start + index / rate and is started then whether or not the
 * earlier ones finished; its latency counts from that due time, not from when it actually went
 * out. A closed loop waits for a reply before sending the next call, so a slow server also slows
 * the offered load and the queueing it causes never shows in the latencies ("coordinated
 * omission"); here it does, and a server slower than the rate shows latencies that grow.
 */
export async function openLoop(
  total: number,
  ratePerSecond: number,
  task: () => Promise<unknown>,
  clock: Clock = realClock,
): Promise<LoadResult> {
  const intervalMs = 1000 / ratePerSecond;
  const samples: number[] = [];
  const lags: number[] = [];
  const pending: Promise<void>[] = [];
  let inFlight = 0;
  let maxInFlight = 0;
  let failure: unknown;
  const begin = clock.now();
  for (let index = 0; index < total; index++) {
    const due = begin + index * intervalMs;
    // Timers may fire early against this clock (libuv's loop time is cached and whole
    // milliseconds), and a call sent before its due time would count a latency below its real
    // one (even below zero for a fast call): sleep again until the due time has passed. Always
    // sleep once, even when late, so finished calls are timestamped before the next is sent.
    do await clock.sleep(due - clock.now());
    while (clock.now() < due);
    lags.push(clock.now() - due);
    inFlight++;
    maxInFlight = Math.max(maxInFlight, inFlight);
    pending.push(
      task().then(
        () => {
          samples.push(clock.now() - due);
          inFlight--;
        },
        (error: unknown) => {
          failure ??= error;
          inFlight--;
        },
      ),
    );
  }
  await Promise.all(pending);
  if (failure !== undefined) throw failure;
  const seconds = (clock.now() - begin) / 1000;
  return {
    latency: summarize(samples),
    perSecond: Math.round(total / seconds),
    offeredPerSecond: Math.round(ratePerSecond * 100) / 100,
    maxInFlight,
    startLagP99Ms: summarize(lags).p99Ms,
  };
}

/** Runs `total` calls of `task` as `spec` says. */
export function drive(spec: LoadSpec, total: number, task: () => Promise<unknown>): Promise<LoadResult> {
  return spec.kind === 'open'
    ? openLoop(total, spec.ratePerSecond, task)
    : load(total, spec.concurrency, task);
}

/**
 * Runs a comma-separated list of loads in order, `total` calls each, in one process (a process
 * start costs seconds on a loaded machine). `open:<f>x` is an open loop at f times the throughput
 * of the last closed loop before it (the saturation throughput when that one ran at c=N).
 */
export async function driveAll(
  specs: string,
  total: number,
  task: () => Promise<unknown>,
): Promise<{ load: string; result: LoadResult }[]> {
  const results: { load: string; result: LoadResult }[] = [];
  let saturated: number | undefined;
  for (const text of specs.split(',')) {
    const relative = /^open:(\d+(?:\.\d+)?)x$/.exec(text);
    if (relative !== null && saturated === undefined)
      throw new Error(`${text} needs a closed loop before it`);
    const spec: LoadSpec =
      relative === null
        ? parseLoadSpec(text)
        : {
            kind: 'open',
            ratePerSecond: Math.max(0.1, Math.round(Number(relative[1]) * saturated! * 10) / 10),
          };
    const before = process.cpuUsage();
    const measured = await drive(spec, total, task);
    const cpu = process.cpuUsage(before);
    const result = {
      ...measured,
      cpuMsPerRequest: Math.round(((cpu.user + cpu.system) / 1000 / total) * 1000) / 1000,
    };
    if (spec.kind === 'closed') saturated = result.perSecond;
    results.push({ load: formatLoadSpec(spec), result });
  }
  return results;
}

/** `"0-2,5"` → [0, 1, 2, 5]. */
export function parseCpuList(text: string): number[] {
  const cores = new Set<number>();
  for (const part of text.split(',')) {
    const match = /^(\d+)(?:-(\d+))?$/.exec(part.trim());
    if (match === null) throw new Error(`not a CPU list: ${text}`);
    const first = Number(match[1]);
    const last = match[2] === undefined ? first : Number(match[2]);
    if (last < first) throw new Error(`not a CPU list: ${text}`);
    for (let core = first; core <= last; core++) cores.add(core);
  }
  return [...cores].sort((a, b) => a - b);
}

/** `a / b` to two decimals (ratios vs direct in the same run). */
export function ratio(value: number, reference: number): number {
  return Math.round((value / reference) * 100) / 100;
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
