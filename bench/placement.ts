/**
 * CPU placement of the benchmark's processes, emulating Nitro's partitioning (DESIGN.md 8): on
 * Nitro the enclave owns its vCPUs, so a run where four processes share every core mixes the
 * runtime's overheads with contention that production does not have. "on" pins the enclave (and
 * the direct baseline, which stands for the model running alone on the enclave's cores) to the
 * enclave cores and the parent, client and KMS simulator to the others; "off" lets every process
 * use every core, as the previous rounds measured.
 *
 * Affinity is set with `taskset -a` (every thread of the process). Threads created later (worker
 * threads, ONNX Runtime's pools, libuv's) inherit the mask of the thread that creates them, so
 * pinning a process once it is up covers them too; `affinityOf` reads every thread's mask back so
 * the result file shows it held.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import os from 'node:os';
import { parseArgs } from 'node:util';
import { parseCpuList } from './stats.ts';

export type PinMode = 'on' | 'off';
export type BodyKind = 'json' | 'binary';

const TASKSET = '/usr/bin/taskset';

/** The cores each side gets in one mode. */
export interface Placement {
  readonly mode: PinMode;
  /** The enclave process, its workers and the direct baseline. */
  readonly enclave: string;
  /** The parent, the client(s) and the KMS simulator. */
  readonly host: string;
}

export interface BenchOptions {
  readonly placements: readonly Placement[];
  /** How many cores the enclave side has: its worker count and ONNX Runtime's thread count. */
  readonly enclaveCoreCount: number;
  readonly body: BodyKind;
  /** Open-loop arrival rates as fractions of the direct baseline's saturation throughput. */
  readonly openLoopFractions: readonly number[];
}

/** Every core of this machine, as a CPU list. */
export function allCores(): string {
  return `0-${os.cpus().length - 1}`;
}

/**
 * The benchmarks' common flags: `--pin both|on|off` (default both: pinned then unpinned in one
 * run), `--enclave-cores` (default the last core) and `--host-cores` (default the others),
 * `--body json|binary`, `--open-loop 0.5,0.9`.
 */
export function parseBenchOptions(argv: readonly string[]): BenchOptions {
  const cores = os.cpus().length;
  const { values } = parseArgs({
    args: [...argv],
    options: {
      pin: { type: 'string', default: 'both' },
      'enclave-cores': { type: 'string', default: String(cores - 1) },
      'host-cores': { type: 'string', default: cores > 2 ? `0-${cores - 2}` : '0' },
      body: { type: 'string', default: 'json' },
      'open-loop': { type: 'string', default: '0.5,0.9' },
    },
    strict: true,
  });
  const pin = values.pin;
  if (pin !== 'both' && pin !== 'on' && pin !== 'off') throw new Error('--pin takes both, on or off');
  if (values.body !== 'json' && values.body !== 'binary') throw new Error('--body takes json or binary');
  const enclave = parseCpuList(values['enclave-cores']);
  const host = parseCpuList(values['host-cores']);
  const modes: PinMode[] = pin === 'both' ? ['on', 'off'] : [pin];
  if (modes.includes('on')) {
    if (cores < 2) throw new Error('pinning needs at least 2 cores (one for the enclave, one for the host)');
    if (enclave.some((core) => host.includes(core)))
      throw new Error('--enclave-cores and --host-cores overlap');
    if ([...enclave, ...host].some((core) => core >= cores))
      throw new Error(`this machine has ${cores} cores`);
  }
  const fractions =
    values['open-loop'] === '' || values['open-loop'] === 'none'
      ? []
      : values['open-loop'].split(',').map(Number);
  if (fractions.some((fraction) => !(fraction > 0))) throw new Error('--open-loop takes positive fractions');
  return {
    placements: modes.map((mode) =>
      mode === 'on'
        ? { mode, enclave: values['enclave-cores'], host: values['host-cores'] }
        : { mode, enclave: allCores(), host: allCores() },
    ),
    enclaveCoreCount: enclave.length,
    body: values.body,
    openLoopFractions: fractions,
  };
}

/** Sets the CPU affinity of every thread of `pid`. */
export function setAffinity(pid: number, cores: string): void {
  execFileSync(TASKSET, ['-a', '-cp', cores, String(pid)], { stdio: 'ignore' });
}

/** The distinct affinity lists of `pid`'s threads (one entry when all agree). */
export function affinityOf(pid: number): string[] {
  const lists = new Set<string>();
  for (const task of readdirSync(`/proc/${pid}/task`)) {
    try {
      const status = readFileSync(`/proc/${pid}/task/${task}/status`, 'utf8');
      const match = /^Cpus_allowed_list:\s*(\S+)/m.exec(status);
      if (match !== null) lists.add(match[1]!);
    } catch {
      // The thread ended between the listing and the read.
    }
  }
  return [...lists];
}

/** `command args` run under `taskset -c cores`. */
export function pinned(cores: string, command: string, args: readonly string[]): [string, string[]] {
  return [TASKSET, ['-c', cores, command, ...args]];
}

/** Peak resident set size (VmHWM) of a running process, in MiB; `self` for this one. */
export function peakRssOf(pid: number | 'self'): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const match = /^VmHWM:\s*(\d+)\s*kB/m.exec(status);
  return match === null ? Number.NaN : Math.round(Number(match[1]) / 1024);
}
