/**
 * A throwaway one-node Ceph cluster with the RADOS Gateway on 127.0.0.1, for tests that need a
 * real S3 with versioning (DESIGN.md 5): monitor (v1 messenger, `auth none`), one OSD on memstore
 * (RAM only), the gateway's beast frontend, and an S3 user. Daemons run in the foreground as our
 * children and are stopped by pid. Where the packages are absent the caller skips — except under
 * `CI=true`, where `.ci/run` installs them and their absence is a failure.
 */
import { spawn, execFile } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export const RADOS_INSTALL_COMMAND =
  'apt-get install --no-install-recommends radosgw ceph-mon ceph-osd ceph-common';

/** A running gateway. */
export interface RadosGateway {
  readonly endpoint: string;
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
  /** Adds an S3 user with the given keys (e.g. an operator whose keys also sign KMS requests). */
  createUser(uid: string, accessKeyId: string, secretAccessKey: string): Promise<void>;
  /** Stops the gateway only (an S3 outage); {@link stop} still cleans up. */
  stopGateway(): Promise<void>;
  stop(): Promise<void>;
}

/** True when the daemons are installed. */
export function radosGatewayInstalled(): boolean {
  return ['/usr/bin/radosgw', '/usr/bin/ceph-mon', '/usr/bin/ceph-osd', '/usr/bin/monmaptool'].every((file) =>
    existsSync(file),
  );
}

async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

async function waitFor(
  check: () => Promise<boolean>,
  what: string,
  timeoutMs: number,
  log: string,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check().catch(() => false)) return;
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  throw new Error(`RADOS Gateway setup: ${what} did not come up within ${timeoutMs} ms (logs in ${log})`);
}

/** Starts tried before giving up. */
const START_ATTEMPTS = 3;

/**
 * Starts mon + osd + rgw; resolves once the S3 user exists. On a loaded 2-core machine a daemon can
 * be slow to come up, and now and then a fresh OSD's first boot is refused by its monitor ("wrong
 * fsid", then the OSD exits; seen here in about one start in three, cause not found): more
 * attempts with fresh ports and a fresh cluster before giving up, with the daemon logs' last
 * lines in the error. An OSD that exits fails its attempt at once rather than after the wait.
 */
export async function startRadosGateway(): Promise<RadosGateway> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await startOnce();
    } catch (error) {
      if (attempt >= START_ATTEMPTS) throw error;
      console.warn(
        `RADOS Gateway: start ${attempt} of ${START_ATTEMPTS} failed, retrying: ${(error as Error).message.slice(0, 2000)}`,
      );
    }
  }
}

async function startOnce(): Promise<RadosGateway> {
  const directory = await mkdtemp(path.join(os.tmpdir(), 'nitro-infer-rgw-'));
  for (const folder of ['mon', 'osd', 'run', 'log', 'rgw']) await mkdir(path.join(directory, folder));
  const monPort = await freePort();
  const rgwPort = await freePort();
  const fsid = randomUUID();
  const conf = path.join(directory, 'ceph.conf');
  await writeFile(
    conf,
    `[global]
fsid = ${fsid}
mon host = v1:127.0.0.1:${monPort}
mon initial members = a
auth cluster required = none
auth service required = none
auth client required = none
ms bind msgr2 = false
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
mon allow pool size one = true
mon warn on pool no redundancy = false
mon max pg per osd = 1000
osd crush chooseleaf type = 0
osd objectstore = memstore
memstore device bytes = 1073741824
run dir = ${directory}/run
log file = ${directory}/log/$name.log
admin socket = ${directory}/run/$name.asok
[mon.a]
mon data = ${directory}/mon
[osd.0]
osd data = ${directory}/osd
[client.rgw.a]
rgw frontends = beast endpoint=127.0.0.1:${rgwPort}
rgw data = ${directory}/rgw
`,
  );
  const children: ChildProcess[] = [];
  const daemon = (command: string, args: string[]) => {
    const child = spawn(command, ['-c', conf, ...args, '-f'], { stdio: 'ignore' });
    children.push(child);
    return child;
  };
  const stop = async (child: ChildProcess) => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
    await exited;
    clearTimeout(timer);
  };
  const cleanup = async () => {
    for (const child of children.reverse()) await stop(child);
    await rm(directory, { recursive: true, force: true });
  };
  const logTail = async () => {
    const tails: string[] = [];
    for (const name of ['mon.a', 'osd.0', 'client.rgw.a']) {
      const text = await readFile(path.join(directory, 'log', `${name}.log`), 'utf8').catch(() => '');
      tails.push(`--- ${name}.log\n${text.split('\n').slice(-15).join('\n')}`);
    }
    return tails.join('\n');
  };
  try {
    await run('monmaptool', [
      '--create',
      '--addv',
      'a',
      `[v1:127.0.0.1:${monPort}]`,
      '--fsid',
      fsid,
      path.join(directory, 'monmap'),
    ]);
    await run('ceph-mon', ['-c', conf, '--mkfs', '-i', 'a', '--monmap', path.join(directory, 'monmap')]);
    daemon('ceph-mon', ['-i', 'a']);
    const ceph = (...args: string[]) => run('ceph', ['-c', conf, '--connect-timeout', '10', ...args]);
    await waitFor(
      async () => (await ceph('mon', 'stat')).stdout.includes('quorum'),
      'the monitor',
      30_000,
      directory,
    );
    await ceph('osd', 'create');
    await run('ceph-osd', ['-c', conf, '-i', '0', '--mkfs']);
    const osd = daemon('ceph-osd', ['-i', '0']);
    const osdExited = new Promise<never>((_resolve, reject) =>
      osd.once('exit', (code, signal) =>
        reject(
          new Error(
            `RADOS Gateway setup: the OSD exited (${code ?? signal}) before it came up (logs in ${directory})`,
          ),
        ),
      ),
    );
    // Only the race below listens; an exit at the final stop is expected.
    osdExited.catch(() => {});
    await Promise.race([
      waitFor(async () => /1 up/.test((await ceph('osd', 'stat')).stdout), 'the OSD', 90_000, directory),
      osdExited,
    ]);
    const gateway = daemon('radosgw', ['-n', 'client.rgw.a']);
    const endpoint = `http://127.0.0.1:${rgwPort}`;
    await waitFor(async () => (await fetch(endpoint)).status > 0, 'the gateway', 90_000, directory);
    const accessKeyId = `NITRO${randomUUID().replace(/-/g, '').slice(0, 15).toUpperCase()}`;
    const secretAccessKey = randomUUID() + randomUUID();
    await run('radosgw-admin', [
      '-c',
      conf,
      '-n',
      'client.rgw.a',
      'user',
      'create',
      '--uid',
      'nitro-infer',
      '--display-name',
      'nitro-infer tests',
      '--access-key',
      accessKeyId,
      '--secret-key',
      secretAccessKey,
    ]);
    const createUser = async (uid: string, userAccessKey: string, userSecret: string) => {
      await run('radosgw-admin', [
        '-c',
        conf,
        '-n',
        'client.rgw.a',
        'user',
        'create',
        '--uid',
        uid,
        '--display-name',
        uid,
        '--access-key',
        userAccessKey,
        '--secret-key',
        userSecret,
      ]);
    };
    return {
      endpoint,
      accessKeyId,
      secretAccessKey,
      createUser,
      stopGateway: () => stop(gateway),
      stop: cleanup,
    };
  } catch (error) {
    const logs = await logTail();
    await cleanup();
    throw new Error(`${(error as Error).message}\n${logs}`);
  }
}
