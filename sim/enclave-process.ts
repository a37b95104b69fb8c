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
  /**
   * Restart the enclave when it exits unexpectedly, with exponential backoff, and report each
   * exit and restart (the local stack prints them). Off by default: tests that kill the enclave
   * decide themselves when it comes back.
   */
  readonly restart?: {
    readonly report: (event: EnclaveRestartEvent) => void;
    /** First delay; doubled per consecutive failure up to `maxDelayMs`. */
    readonly minDelayMs?: number;
    readonly maxDelayMs?: number;
  };
}

/** What the supervisor reports. */
export type EnclaveRestartEvent =
  | {
      readonly kind: 'exited';
      readonly reason: string;
      readonly restartInMs: number;
      readonly attempt: number;
    }
  | { readonly kind: 'restarted'; readonly pid: number; readonly attempt: number }
  | { readonly kind: 'restart_failed'; readonly reason: string; readonly attempt: number };

/** An enclave that served this long before it died counts as healthy: the backoff starts over. */
const STABLE_AFTER_MS = 60_000;

/** True when the enclave process can be put in its own network namespace here. */
export function canIsolateNetwork(): boolean {
  return process.getuid?.() === 0 && existsSync('/usr/bin/unshare');
}

export class EnclaveProcess {
  readonly #options: EnclaveProcessOptions;
  #child: ChildProcess | undefined;
  #stopping = false;
  #attempt = 0;
  #startedAt = 0;
  #restartTimer: NodeJS.Timeout | undefined;
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
    // The child asks the kernel for SIGTERM when this process exits, so it never outlives the stack.
    const args = [entry, 'enclave', '--config', this.#options.configFile, '--exit-with-parent'];
    this.#stopping = false;
    this.isolated = this.#options.isolateNetwork !== false && canIsolateNetwork();
    const child = this.isolated
      ? spawn('/usr/bin/unshare', ['--net', '--', process.execPath, ...args], {
          stdio: ['ignore', 'pipe', 'pipe'],
          env: { ...process.env, ...this.#options.env },
          detached: true,
        })
      : spawn(process.execPath, args, {
          stdio: ['ignore', 'pipe', 'pipe'],
          env: { ...process.env, ...this.#options.env },
          detached: true,
        });
    // Its own process group: a Ctrl-C on the terminal reaches only the stack, which then stops the
    // enclave itself (and does not mistake that for a crash). It still dies with the stack
    // (--exit-with-parent).
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
    this.#startedAt = Date.now();
    child.once('exit', (code, signal) => this.#exited(child, signal ?? String(code)));
  }

  #exited(child: ChildProcess, reason: string): void {
    const restart = this.#options.restart;
    if (this.#stopping || restart === undefined || this.#child !== child) return;
    if (Date.now() - this.#startedAt >= STABLE_AFTER_MS) this.#attempt = 0;
    this.#attempt++;
    const minDelay = restart.minDelayMs ?? 500;
    const delay = Math.min(restart.maxDelayMs ?? 30_000, minDelay * 2 ** (this.#attempt - 1));
    restart.report({ kind: 'exited', reason, restartInMs: delay, attempt: this.#attempt });
    this.#restartTimer = setTimeout(() => {
      this.#restartTimer = undefined;
      if (this.#stopping) return;
      this.start().then(
        () => restart.report({ kind: 'restarted', pid: this.pid ?? 0, attempt: this.#attempt }),
        (error: unknown) => {
          restart.report({
            kind: 'restart_failed',
            reason: (error instanceof Error ? error.message : String(error)).split('\n')[0] ?? '',
            attempt: this.#attempt,
          });
          // start() failed: the child is gone; go round again with a longer delay.
          if (this.#child !== undefined) this.#exited(this.#child, 'failed to start');
        },
      );
    }, delay);
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

  /** Resolves with the running child's exit status — its code, or the signal that ended it — once it exits. */
  async exitStatus(): Promise<number | string> {
    const child = this.#child;
    if (child === undefined) return 'not started';
    if (child.exitCode !== null) return child.exitCode;
    if (child.signalCode !== null) return child.signalCode;
    return new Promise((resolve) =>
      child.once('exit', (code, signal) => resolve(signal ?? code ?? 'unknown')),
    );
  }

  /** Pauses (SIGSTOP) or resumes (SIGCONT) the process: an enclave that stops answering. */
  pause(paused: boolean): void {
    this.#child?.kill(paused ? 'SIGSTOP' : 'SIGCONT');
  }

  /** Stops the enclave for good (no restart). */
  async stop(): Promise<void> {
    this.#stopping = true;
    clearTimeout(this.#restartTimer);
    await this.kill('SIGTERM');
  }
}
