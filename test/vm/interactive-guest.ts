/**
 * A guest that stays up while the host drives it (the vsock stack test): the init runs `script`
 * after the common prologue and then reads commands from its console, which is QEMU's stdin here.
 * Every console line is kept; `waitFor` resolves on the first line (seen or still to come) that
 * matches, so a test waits on events the guest prints instead of sleeping.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { buildInitramfs, initPrologue, qemuArguments, vmPrerequisites } from './guest.ts';

/** A running guest. */
export interface InteractiveGuest {
  /** Console lines so far (carriage returns removed). */
  readonly lines: readonly string[];
  /** The first line at or after `from` (an index into `lines`) that matches, within `timeoutMs`. */
  waitFor(pattern: RegExp, timeoutMs: number, from?: number): Promise<string>;
  /** Writes one command line to the guest's console. */
  send(command: string): void;
  /** Asks the init to power off; kills QEMU if it has not exited within `timeoutMs`. */
  close(timeoutMs?: number): Promise<void>;
}

export async function startInteractiveGuest(options: {
  /** Shell lines the init runs after the prologue, ending in its command loop. */
  readonly script: readonly string[];
  readonly extraEntries: Record<string, string>;
  readonly files: Readonly<Record<string, string>>;
  readonly netdev: string;
  readonly memoryMib: number;
}): Promise<InteractiveGuest> {
  const prerequisites = vmPrerequisites();
  if ('missing' in prerequisites) throw new Error(`VM prerequisites missing: ${prerequisites.missing}`);
  const directory = await mkdtemp(path.join(os.tmpdir(), 'nitro-infer-vm-'));
  let child: ChildProcess;
  try {
    const init = `${[...initPrologue(), ...options.script].join('\n')}\n`;
    const initrd = await buildInitramfs(prerequisites, directory, init, options.extraEntries, options.files);
    child = spawn(
      prerequisites.qemu,
      qemuArguments(prerequisites, initrd, {
        devices: [],
        memoryMib: options.memoryMib,
        netdev: options.netdev,
      }),
      { stdio: ['pipe', 'pipe', 'pipe'] },
    );
  } catch (error) {
    await rm(directory, { recursive: true, force: true });
    throw error;
  }
  const lines: string[] = [];
  const waiters = new Set<{ pattern: RegExp; from: number; resolve: (line: string) => void }>();
  const onLine = (raw: string) => {
    const line = raw.replace(/\r/g, '');
    lines.push(line);
    for (const waiter of waiters) {
      if (lines.length - 1 >= waiter.from && waiter.pattern.test(line)) {
        waiters.delete(waiter);
        waiter.resolve(line);
      }
    }
  };
  createInterface({ input: child.stdout! }).on('line', onLine);
  createInterface({ input: child.stderr! }).on('line', onLine);
  // A write to a guest that has died fails; waitFor reports the death with the console's tail.
  child.stdin!.on('error', () => {});
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  let gone = false;
  // The initramfs (a few hundred MB) goes with the guest; close() waits for that too.
  const removed = exited.then(async () => {
    gone = true;
    await rm(directory, { recursive: true, force: true });
  });
  const tail = () => lines.slice(-60).join('\n');

  return {
    lines,
    waitFor(pattern, timeoutMs, from = 0) {
      const seen = lines.slice(from).find((line) => pattern.test(line));
      if (seen !== undefined) return Promise.resolve(seen);
      if (gone) return Promise.reject(new Error(`the guest is gone; waited for ${pattern}:\n${tail()}`));
      return new Promise((resolve, reject) => {
        const waiter = {
          pattern,
          from,
          resolve: (line: string) => {
            clearTimeout(timer);
            resolve(line);
          },
        };
        const timer = setTimeout(() => {
          waiters.delete(waiter);
          reject(new Error(`no console line matched ${pattern} within ${timeoutMs} ms:\n${tail()}`));
        }, timeoutMs);
        waiters.add(waiter);
        void exited.then(() => {
          if (!waiters.delete(waiter)) return;
          clearTimeout(timer);
          reject(new Error(`the guest exited; waited for ${pattern}:\n${tail()}`));
        });
      });
    },
    send(command) {
      child.stdin!.write(`${command}\n`);
    },
    async close(timeoutMs = 30_000) {
      if (!gone) {
        child.stdin!.write('poweroff\n');
        const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
        await exited;
        clearTimeout(timer);
      }
      await removed;
    },
  };
}
