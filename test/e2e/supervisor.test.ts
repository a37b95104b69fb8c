/**
 * The local stack as a supervisor (`npm start` = `nitro-infer sim`), driven as a user and a process
 * manager would: a busy port is a clear, fast failure; a killed enclave comes back and serves again
 * without restarting the stack, with readiness false in between; a stack killed with SIGKILL leaves
 * nothing that blocks the next start; SIGTERM to `npm start` leaves no process behind (npm does not
 * pass it on: the stack notices its parent going).
 */
import { spawn } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import type { ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient } from '../../client/index.ts';
import { PROJECT_ROOT } from '../helpers/fixtures.ts';

const BIN = path.join(PROJECT_ROOT, 'bin', 'nitro-infer.js');
let directory = '';
const started: ChildProcess[] = [];

interface Running {
  readonly child: ChildProcess;
  readonly lines: string[];
  readonly ready: { endpoint: string; enclavePid: number; files: { pcrs: string; root: string } };
  waitFor(pattern: RegExp): Promise<string>;
}

/** Starts the stack (directly, or through `npm start` as a newcomer does) and waits for it to serve. */
async function startStack(state: string, viaNpm: boolean): Promise<Running> {
  const args = ['--port', '0', '--state-dir', state, '--json'];
  const child = viaNpm
    ? spawn('npm', ['start', '--silent', '--', ...args], {
        cwd: PROJECT_ROOT,
        stdio: ['ignore', 'pipe', 'pipe'],
      })
    : spawn(process.execPath, [BIN, 'sim', ...args], {
        cwd: PROJECT_ROOT,
        stdio: ['ignore', 'pipe', 'pipe'],
      });
  started.push(child);
  const lines: string[] = [];
  const waiters: { pattern: RegExp; resolve: (line: string) => void }[] = [];
  const onLine = (line: string) => {
    lines.push(line);
    for (const waiter of [...waiters]) {
      if (waiter.pattern.test(line)) {
        waiters.splice(waiters.indexOf(waiter), 1);
        waiter.resolve(line);
      }
    }
  };
  createInterface({ input: child.stdout! }).on('line', onLine);
  createInterface({ input: child.stderr! }).on('line', onLine);
  const waitFor = (pattern: RegExp) => {
    const seen = lines.find((line) => pattern.test(line));
    if (seen !== undefined) return Promise.resolve(seen);
    return new Promise<string>((resolve, reject) => {
      waiters.push({ pattern, resolve });
      child.once('exit', (code) => reject(new Error(`the stack exited (${code}):\n${lines.join('\n')}`)));
    });
  };
  const ready = JSON.parse(await waitFor(/^\{"ready":"sim"/)) as Running['ready'];
  return { child, lines, ready, waitFor };
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function until(condition: () => boolean | Promise<boolean>, what: string): Promise<void> {
  for (let attempt = 0; attempt < 600; attempt++) {
    if (await condition()) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** Every process whose command line names the state directory (the stack and its enclave). */
async function processesOf(state: string): Promise<number[]> {
  const { readdir } = await import('node:fs/promises');
  const pids: number[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const cmdline = await readFile(`/proc/${entry}/cmdline`, 'utf8').catch(() => '');
    if (cmdline.includes(state)) pids.push(Number(entry));
  }
  return pids;
}

async function infers(ready: Running['ready']): Promise<boolean> {
  const client = createClient({
    endpoint: ready.endpoint,
    policy: {
      pcrs: await readFile(ready.files.pcrs, 'utf8'),
      // The SDK takes DER roots; the stack writes PEM for people.
      roots: [new X509Certificate(await readFile(ready.files.root)).raw],
    },
  });
  const result = await client.infer('example', {
    inputs: [
      {
        name: 'X',
        shape: [1, 16],
        datatype: 'FP32',
        data: Array.from({ length: 16 }, (_, index) => index / 16),
      },
    ],
  });
  return result.response.outputs.length === 1;
}

beforeAll(async () => {
  directory = await mkdtemp(path.join(os.tmpdir(), 'ni-sup-'));
});

afterAll(async () => {
  for (const child of started)
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  for (const pid of await processesOf(directory)) process.kill(pid, 'SIGKILL');
  await rm(directory, { recursive: true, force: true });
});

describe('the local stack as a supervisor', () => {
  it('exits non-zero with the port and what to do when the port is busy, and leaves nothing behind', async () => {
    const blocker = net.createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const port = (blocker.address() as net.AddressInfo).port;
    const state = path.join(directory, 'busy');
    try {
      const child = spawn(process.execPath, [BIN, 'sim', '--port', String(port), '--state-dir', state], {
        cwd: PROJECT_ROOT,
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      started.push(child);
      let stderr = '';
      child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
      const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
      expect(code).toBe(2);
      expect(stderr).toContain(`127.0.0.1:${port} is already in use`);
      expect(stderr).toContain('--port');
      expect(existsSync(path.join(state, 'stack.pid'))).toBe(false);
      expect(existsSync(path.join(state, 'kms.sock'))).toBe(false);
      expect(await processesOf(state)).toEqual([]);
    } finally {
      blocker.close();
    }
  }, 120_000);

  it('restarts a killed enclave, is not ready meanwhile, serves again; SIGKILL of the stack blocks no next start', async () => {
    const state = path.join(directory, 'a');
    const stack = await startStack(state, false);
    expect(await infers(stack.ready)).toBe(true);

    process.kill(stack.ready.enclavePid, 'SIGKILL');
    await stack.waitFor(/^enclave exited/);
    // Between the crash and the restart the parent says so (the link is down).
    const during = await fetch(`${stack.ready.endpoint}/v2/health/ready`);
    expect(during.status).toBe(503);
    const restarted = await stack.waitFor(/^enclave restarted \(pid (\d+)\)/);
    const newPid = Number(/pid (\d+)/.exec(restarted)![1]);
    expect(newPid).not.toBe(stack.ready.enclavePid);
    await until(
      async () => (await fetch(`${stack.ready.endpoint}/v2/models/example/ready`)).status === 200,
      'the reload',
    );
    expect(await infers(stack.ready)).toBe(true);

    // SIGKILL to the stack: its enclave follows (parent-death signal), the lock and sockets stay...
    stack.child.kill('SIGKILL');
    await until(() => !alive(newPid), 'the enclave to follow its stack');
    expect(existsSync(path.join(state, 'stack.pid'))).toBe(true);
    // ...and the next start in the same state directory takes over the stale lock and sockets.
    const again = await startStack(state, false);
    expect(await infers(again.ready)).toBe(true);
    again.child.kill('SIGTERM');
    await new Promise((resolve) => again.child.once('exit', resolve));
    expect(existsSync(path.join(state, 'stack.pid'))).toBe(false);
  }, 300_000);

  it('refuses a second stack on a state directory in use', async () => {
    const state = path.join(directory, 'b');
    const first = await startStack(state, false);
    const second = spawn(process.execPath, [BIN, 'sim', '--port', '0', '--state-dir', state], {
      cwd: PROJECT_ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    started.push(second);
    let stderr = '';
    second.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    expect(await new Promise((resolve) => second.once('exit', resolve))).toBe(2);
    expect(stderr).toContain(`another local stack (pid ${first.child.pid})`);
    first.child.kill('SIGTERM');
    await new Promise((resolve) => first.child.once('exit', resolve));
  }, 300_000);

  it('SIGTERM to npm start leaves no process behind', async () => {
    const state = path.join(directory, 'c');
    const stack = await startStack(state, true);
    const pids = await processesOf(state);
    expect(pids.length).toBeGreaterThanOrEqual(2); // the stack and its enclave
    stack.child.kill('SIGTERM'); // npm itself, as a supervisor or container runtime would
    await until(async () => (await processesOf(state)).length === 0, 'every process of the stack to exit');
    expect(existsSync(path.join(state, 'stack.pid'))).toBe(false);
  }, 300_000);
});
