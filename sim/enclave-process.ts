/**
 * The enclave as a child process (`nitro-infer enclave --config …`), as the parent sees it on real
 * hardware: a separate process reachable only through its socket. When running as root and
 * `unshare` exists, it starts in a fresh network namespace, so — like a real enclave — it can reach
 * nothing but the Unix sockets it was given (filesystem sockets cross network namespaces).
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { PROJECT_ROOT } from './simulated-enclave.ts';

/** Options of {@link EnclaveProcess}. */
export interface EnclaveProcessOptions {
  readonly configFile: string;
  /** Run in a new network namespace when possible (default true). */
  readonly isolateNetwork?: boolean;
  /** Every stdout/stderr line of the enclave (its JSON log). */
  readonly onLine?: (line: string) => void;
  readonly env?: Readonly<Record<string, string>>;
}

/** True when the enclave process can be put in its own network namespace here. */
export function canIsolateNetwork(): boolean {
  return process.getuid?.() === 0 && existsSync('/usr/bin/unshare');
}

export class EnclaveProcess {
  readonly #options: EnclaveProcessOptions;
  #child: ChildProcess | undefined;
  /** Whether the running child is in its own network namespace. */
  isolated = false;

  constructor(options: EnclaveProcessOptions) {
    this.#options = options;
  }

  get pid(): number | undefined {
    return this.#child?.pid;
  }

  /** Starts the child and resolves once it serves (its `{"ready":"enclave"}` line). */
  async start(): Promise<void> {
    const entry = path.join(PROJECT_ROOT, 'bin', 'nitro-infer.js');
    const args = [entry, 'enclave', '--config', this.#options.configFile];
    this.isolated = this.#options.isolateNetwork !== false && canIsolateNetwork();
    const child = this.isolated
      ? spawn('/usr/bin/unshare', ['--net', '--', process.execPath, ...args], {
          stdio: ['ignore', 'pipe', 'pipe'],
          env: { ...process.env, ...this.#options.env },
        })
      : spawn(process.execPath, args, {
          stdio: ['ignore', 'pipe', 'pipe'],
          env: { ...process.env, ...this.#options.env },
        });
    this.#child = child;
    const lines: string[] = [];
    const ready = new Promise<void>((resolve, reject) => {
      const onLine = (line: string) => {
        this.#options.onLine?.(line);
        if (lines.length < 50) lines.push(line);
        if (line.startsWith('{"ready":"enclave"')) resolve();
      };
      createInterface({ input: child.stdout! }).on('line', onLine);
      createInterface({ input: child.stderr! }).on('line', onLine);
      child.once('exit', (code, signal) =>
        reject(
          new Error(
            `the enclave exited (${signal ?? code}) before it was ready:\n${lines.slice(-20).join('\n')}`,
          ),
        ),
      );
    });
    await ready;
  }

  /** Sends `signal` (SIGKILL simulates a crash) and resolves once the process is gone. */
  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const child = this.#child;
    if (child === undefined || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill(signal);
    const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(timer);
  }

  /** Pauses (SIGSTOP) or resumes (SIGCONT) the process: an enclave that stops answering. */
  pause(paused: boolean): void {
    this.#child?.kill(paused ? 'SIGSTOP' : 'SIGCONT');
  }

  async stop(): Promise<void> {
    await this.kill('SIGTERM');
  }
}
