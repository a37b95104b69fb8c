/**
 * The enclave's LinkServer draining (SIGTERM): new work is refused with ERR_LINK_DRAINING while
 * status and the rest of an upload are still served, `idle()` waits for the requests in flight but
 * not for long polls, and `end()` delivers the last answers before the connections close.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { LinkServer } from '../../../../enclave/server/link-server.ts';
import type { LinkHandler } from '../../../../enclave/server/link-server.ts';
import { TestLinkClient } from '../../../helpers/link-client.ts';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** A server whose `ohttp` and `models.watch` answers wait until released. */
async function start() {
  const gates: (() => void)[] = [];
  const held = () => new Promise<void>((resolve) => gates.push(resolve));
  const handlers = new Map<string, LinkHandler>([
    ['status', async () => ({ ready: true })],
    ['model.load', async () => ({})],
    ['model.chunk', async () => ({})],
    ['ohttp', async () => (await held(), { body: new Uint8Array([7]) })],
    ['models.watch', async () => (await held(), { lost: [] })],
  ]);
  const link = new LinkServer(handlers, () => {});
  const directory = mkdtempSync(path.join(tmpdir(), 'link-drain-'));
  const socketPath = path.join(directory, 'link.sock');
  const server = net.createServer((socket) => link.accept(socket));
  await new Promise<void>((resolve) => server.listen(socketPath, resolve));
  const client = await TestLinkClient.connect(socketPath);
  cleanups.push(async () => {
    client.close();
    link.close();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    rmSync(directory, { recursive: true, force: true });
  });
  return { link, client, release: () => gates.splice(0).forEach((open) => open()) };
}

describe('LinkServer drain', () => {
  it('refuses new work with ERR_LINK_DRAINING, serves status and uploads, finishes what is in flight', async () => {
    const { link, client, release } = await start();
    const inFlight = client.request('ohttp', { body: new Uint8Array([1]) });
    const watch = client.request('models.watch', {});
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(link.working).toBe(1); // the long poll is not counted

    link.drain();
    expect(await client.code('ohttp', { body: new Uint8Array([2]) })).toBe('ERR_LINK_DRAINING');
    expect(await client.code('model.load', { name: 'm', size: 1 })).toBe('ERR_LINK_DRAINING');
    expect(await client.code('status')).toBe('ok');
    expect(await client.code('model.chunk', { name: 'm', data: new Uint8Array([1]) })).toBe('ok');

    let idle = false;
    const waiting = link.idle().then(() => (idle = true));
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(idle).toBe(false);
    release();
    await waiting;
    expect((await inFlight).type).toBe('ok');
    expect((await watch).type).toBe('ok');
  });

  it('delivers the answers written last before it ends the connections', async () => {
    const { link, client, release } = await start();
    const inFlight = client.request('ohttp', { body: new Uint8Array([1]) });
    await new Promise((resolve) => setTimeout(resolve, 50));
    link.drain();
    release();
    await link.idle();
    await link.end();
    // The answer arrives before the connection closes (a lost one would leave only the close).
    const first = await Promise.race([
      inFlight.then((response) => response.type),
      client.closed.then(() => 'closed'),
    ]);
    expect(first).toBe('ok');
    await client.closed;
  });
});
