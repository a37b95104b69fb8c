/**
 * The enclave's LinkServer against a hostile link client on a real Unix socket: each attack of
 * issue 10 gets its typed code on an error frame (id 0), the server stays up, and a legitimate
 * request succeeds afterwards. Negative controls show which limit does the refusing.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { LinkServer } from '../../../../enclave/server/link-server.ts';
import type { LinkHandler, LinkServerOptions } from '../../../../enclave/server/link-server.ts';
import { encodeCbor } from '../../../../shared/cbor.ts';
import { TestLinkClient } from '../../../helpers/link-client.ts';

const MiB = 1024 * 1024;

interface Harness {
  readonly link: LinkServer;
  readonly path: string;
  connect(): Promise<TestLinkClient>;
}

const cleanups: (() => Promise<void>)[] = [];
/** While set, `ohttp` handlers wait for it (a slow enclave). */
let gate: Promise<void> | undefined;
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function start(options: LinkServerOptions = {}): Promise<Harness> {
  const handlers = new Map<string, LinkHandler>([
    ['status', async () => ({ ready: true })],
    ['model.chunk', async (fields) => ({ bytes: (fields.get('data') as Uint8Array).byteLength })],
    [
      'ohttp',
      async (fields) => {
        await gate;
        return { body: new Uint8Array([(fields.get('body') as Uint8Array).byteLength % 251]) };
      },
    ],
  ]);
  const link = new LinkServer(handlers, () => {}, options);
  const directory = mkdtempSync(path.join(tmpdir(), 'link-server-'));
  const socketPath = path.join(directory, 'link.sock');
  const server = net.createServer((socket) => link.accept(socket));
  await new Promise<void>((resolve) => server.listen(socketPath, resolve));
  const clients: TestLinkClient[] = [];
  cleanups.push(async () => {
    for (const client of clients) client.close();
    link.close();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    rmSync(directory, { recursive: true, force: true });
  });
  return {
    link,
    path: socketPath,
    connect: async () => {
      const client = await TestLinkClient.connect(socketPath);
      clients.push(client);
      return client;
    },
  };
}

/** `u32 frame length | u32 header length | header` for a payload of `payloadBytes` still to come. */
function lengthsAndHeader(header: Uint8Array, payloadBytes: number): Buffer {
  const lengths = Buffer.alloc(8);
  lengths.writeUInt32BE(4 + header.byteLength + payloadBytes, 0);
  lengths.writeUInt32BE(header.byteLength, 4);
  return Buffer.concat([lengths, header]);
}

const ohttpHeader = (id: number) =>
  encodeCbor(
    new Map<string, unknown>([
      ['id', id],
      ['type', 'ohttp'],
      ['payload', 'body'],
    ]),
  );

async function refusedWith(client: TestLinkClient, bytes: Uint8Array): Promise<string | undefined> {
  client.socket.write(bytes);
  await client.closed;
  return client.connectionError;
}

async function until(condition: () => boolean): Promise<void> {
  while (!condition()) await new Promise((resolve) => setTimeout(resolve, 5));
}

async function legitimateStillWorks(harness: Harness): Promise<void> {
  const client = await harness.connect();
  expect(await client.code('status')).toBe('ok');
  const answer = await client.request('ohttp', { body: new Uint8Array(3 * MiB + 7) });
  expect(answer.fields.get('body')).toEqual(new Uint8Array([(3 * MiB + 7) % 251]));
  client.close();
}

describe('LinkServer against a hostile link client', () => {
  it('refuses the 33 MB frame of 33 million empty maps from its 8 length bytes', async () => {
    const harness = await start();
    const count = 33_000_000;
    const lengths = Buffer.alloc(13);
    lengths.writeUInt32BE(4 + 5 + count, 0);
    lengths.writeUInt32BE(5 + count, 4); // the whole array as the header
    lengths[8] = 0x9a;
    lengths.writeUInt32BE(count, 9);
    expect(await refusedWith(await harness.connect(), lengths)).toBe('ERR_FRAME_HEADER_TOO_LARGE');
    await legitimateStillWorks(harness);
  });

  it('refuses a header within its byte cap that holds too many items, before decoding them', async () => {
    const harness = await start();
    const maps = 16 * 1024 - 16;
    const header = Buffer.alloc(5 + maps, 0xa0);
    header[0] = 0x9a;
    header.writeUInt32BE(maps, 1);
    expect(await refusedWith(await harness.connect(), lengthsAndHeader(header, 0))).toBe(
      'ERR_FRAME_MALFORMED',
    );
    await legitimateStillWorks(harness);
  });

  it('refuses the 33 MB of maps sent as the payload of a type that carries none', async () => {
    const harness = await start();
    const header = encodeCbor(
      new Map<string, unknown>([
        ['id', 1],
        ['type', 'status'],
        ['payload', 'body'],
      ]),
    );
    expect(await refusedWith(await harness.connect(), lengthsAndHeader(header, 33_000_000))).toBe(
      'ERR_FRAME_PAYLOAD_REFUSED',
    );
    await legitimateStillWorks(harness);
  });

  it.each([
    // {"id": 1, "type": "status", "id" re-encoded with a one-byte length (78 02): 2}
    ['a re-encoded duplicate key', 'a3 62 6964 01 64 74797065 66 737461747573 78 02 6964 02'],
    // {"id": 1.0 (f9 3c00), "type": "status"}
    ['a float id', 'a2 62 6964 f9 3c00 64 74797065 66 737461747573'],
  ])('refuses a header with %s (ERR_FRAME_MALFORMED)', async (_name, header) => {
    const harness = await start();
    const bytes = lengthsAndHeader(Buffer.from(header.replace(/\s+/g, ''), 'hex'), 0);
    expect(await refusedWith(await harness.connect(), bytes)).toBe('ERR_FRAME_MALFORMED');
    await legitimateStillWorks(harness);
  });

  it('refuses connections beyond the limit with ERR_LINK_OVERLOADED, and takes one again when a slot frees', async () => {
    const harness = await start({ maxConnections: 2 });
    const first = await harness.connect();
    const second = await harness.connect();
    expect(await first.code('status')).toBe('ok');
    expect(await second.code('status')).toBe('ok');
    const third = await harness.connect();
    await third.closed;
    expect(third.connectionError).toBe('ERR_LINK_OVERLOADED');
    expect(harness.link.stats.refusedConnections).toBe(1);
    first.close();
    await first.closed;
    await until(() => harness.link.stats.connections === 1);
    await legitimateStillWorks(harness);
    expect(await second.code('status')).toBe('ok');
  });

  it('holds incomplete frames within the shared budget, pauses the rest, and frees stalled budget', async () => {
    const budget = 8 * MiB;
    const harness = await start({ maxBufferedBytes: budget, incompleteFrameTimeoutMs: 300 });
    // Two senders each declare a 6 MiB body, send 5 MiB of it and stall: 12 MiB would not fit.
    const hostile = [await harness.connect(), await harness.connect()];
    for (const [index, client] of hostile.entries()) {
      client.socket.write(lengthsAndHeader(ohttpHeader(index + 1), 6 * MiB));
      client.socket.write(new Uint8Array(5 * MiB));
    }
    await until(
      () => harness.link.stats.waitingConnections === 1 && harness.link.stats.bufferedBytes >= 5 * MiB,
    );
    const held = harness.link.stats;
    expect(held.reservedBytes).toBeLessThanOrEqual(budget);
    // One 6 MiB frame in progress, plus what one paused socket read may hold (≤ 64 KiB).
    expect(held.bufferedBytes).toBeLessThanOrEqual(6 * MiB + 64 * 1024);
    // Small frames pass while the budget is held.
    const bystander = await harness.connect();
    expect(await bystander.code('status')).toBe('ok');
    // Both stall; each is closed with ERR_FRAME_STALLED and its budget comes back.
    await Promise.all(hostile.map((client) => client.closed));
    expect(hostile.map((client) => client.connectionError)).toEqual([
      'ERR_FRAME_STALLED',
      'ERR_FRAME_STALLED',
    ]);
    await until(() => harness.link.stats.connections === 1);
    expect(harness.link.stats).toMatchObject({ reservedBytes: 0, bufferedBytes: 0, waitingConnections: 0 });
    expect(harness.link.stats.stalledFrames).toBe(2);
    await legitimateStillWorks(harness);
  });

  it('negative control: with a budget that fits both, neither sender waits', async () => {
    const harness = await start({ maxBufferedBytes: 64 * MiB, incompleteFrameTimeoutMs: 300 });
    const hostile = [await harness.connect(), await harness.connect()];
    for (const [index, client] of hostile.entries()) {
      client.socket.write(lengthsAndHeader(ohttpHeader(index + 1), 6 * MiB));
      client.socket.write(new Uint8Array(5 * MiB));
    }
    await until(() => harness.link.stats.bufferedBytes >= 10 * MiB);
    expect(harness.link.stats.waitingConnections).toBe(0);
    expect(harness.link.stats.reservedBytes).toBe(2 * (6 * MiB + 8 + ohttpHeader(1).byteLength));
    await Promise.all(hostile.map((client) => client.closed));
  });

  it('a frame that waited for budget completes once budget frees (back-pressure, not refusal)', async () => {
    const harness = await start({ maxBufferedBytes: 8 * MiB, incompleteFrameTimeoutMs: 60_000 });
    const holder = await harness.connect();
    holder.socket.write(lengthsAndHeader(ohttpHeader(1), 6 * MiB));
    holder.socket.write(new Uint8Array(MiB));
    await until(() => harness.link.stats.reservedBytes > 0);
    const waiter = await harness.connect();
    const answer = waiter.request('ohttp', { body: new Uint8Array(6 * MiB) });
    await until(() => harness.link.stats.waitingConnections === 1);
    holder.close(); // its reservation is released when its connection closes
    expect((await answer).fields.get('body')).toEqual(new Uint8Array([(6 * MiB) % 251]));
    await until(() => harness.link.stats.reservedBytes === 0);
  });

  it('does not count time paused by its own back-pressure as the sender stalling', async () => {
    // The clock covers a frame from its first byte: 1 s is ample for 16 MiB over a Unix socket.
    const harness = await start({ incompleteFrameTimeoutMs: 1_000 });
    let open: () => void = () => {};
    gate = new Promise<void>((resolve) => (open = resolve));
    const client = await harness.connect();
    let first: Promise<unknown>;
    try {
      // 16 MiB in flight pauses reading (MAX_IN_FLIGHT_BYTES_PER_CONNECTION); a second frame arrives in part.
      first = client.request('ohttp', { body: new Uint8Array(16 * MiB) });
      client.socket.write(lengthsAndHeader(ohttpHeader(99), 1024));
      await until(() => harness.link.stats.bufferedBytes > 0);
      await new Promise((resolve) => setTimeout(resolve, 1_500)); // past the timeout, all of it paused by us
      expect(client.connectionError).toBeUndefined();
    } finally {
      gate = undefined;
      open();
    }
    expect(((await first) as { type: string }).type).toBe('ok');
    client.socket.write(new Uint8Array(1024)); // completes frame 99 well within the timeout
    expect(await client.code('status')).toBe('ok');
    expect(harness.link.stats.stalledFrames).toBe(0);
  });

  it('refuses a frame larger than the whole budget instead of waiting forever', async () => {
    const harness = await start({ maxBufferedBytes: 2 * MiB });
    const bytes = lengthsAndHeader(ohttpHeader(1), 3 * MiB);
    expect(await refusedWith(await harness.connect(), bytes)).toBe('ERR_FRAME_TOO_LARGE');
  });

  it('lets the legitimate parent stream a model (1 MiB chunks, window 8) and relay a 32 MiB body with the defaults', async () => {
    const harness = await start();
    const client = await harness.connect();
    const chunks = Array.from({ length: 16 }, () =>
      client.request('model.chunk', { name: 'm', data: new Uint8Array(MiB) }),
    );
    const big = client.request('ohttp', { body: new Uint8Array(32 * MiB) });
    const answers = await Promise.all([...chunks, big]);
    expect(answers.every((answer) => answer.type === 'ok')).toBe(true);
    await until(() => harness.link.stats.reservedBytes === 0);
  });
});
