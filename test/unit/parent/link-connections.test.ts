/**
 * The link's several connections against the real link server: an upload and large bodies on the
 * bulk lane while small requests complete on the others, one connection lost while the rest serve,
 * and the enclave's connection limit holding against a parent that opens too many.
 */
import net from 'node:net';
import type { Socket } from 'node:net';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { EnclaveLink } from '../../../parent/link/enclave-link.ts';
import { uploadModel } from '../../../parent/link/model-upload.ts';
import { LinkServer } from '../../../enclave/server/link-server.ts';
import type { LinkHandler, LinkServerOptions } from '../../../enclave/server/link-server.ts';
import { ParentConfigSchema, resolveConfig } from '../../../shared/config.ts';
import { connectTransport } from '../../../transport/index.ts';
import { codeOfAsync } from '../../helpers/codes.ts';

/** The enclave side: which connection each request type arrived on. */
interface Enclave {
  readonly server: LinkServer;
  readonly seen: Array<{ type: string; connection: number }>;
  readonly handlers: Map<string, LinkHandler>;
  close(): Promise<void>;
}

let directory: string;
let socketPath: string;
let enclave: Enclave;
const links: EnclaveLink[] = [];

async function startEnclave(options: LinkServerOptions = {}): Promise<Enclave> {
  const seen: Enclave['seen'] = [];
  const handlers = new Map<string, LinkHandler>();
  const recorded = new Map<string, LinkHandler>();
  for (const type of ['echo', 'ohttp', 'gated', 'model.load', 'model.chunk', 'model.end', 'model.abort']) {
    recorded.set(type, async (fields, connection) => {
      seen.push({ type, connection: connection.id });
      const handler = handlers.get(type);
      return handler === undefined ? {} : handler(fields, connection);
    });
  }
  const server = new LinkServer(recorded, () => {}, options);
  const listener = net.createServer((socket) => server.accept(socket));
  await new Promise<void>((resolve) => listener.listen(socketPath, resolve));
  return {
    server,
    seen,
    handlers,
    close: async () => {
      server.close();
      await new Promise<void>((resolve) => listener.close(() => resolve()));
    },
  };
}

/** A link whose sockets the test can reach, as a broken vsock would drop them. */
function newLink(
  connections: number,
  sockets: Socket[] = [],
  backoff = { initialMs: 10, maxMs: 50 },
  log: (level: string, event: string, details?: Record<string, unknown>) => void = () => {},
): EnclaveLink {
  let calls = 0;
  const link = new EnclaveLink({
    // Slots in call order: the first calls are connections 0, 1, … in order (start() opens them so).
    connect: async () => {
      const slot = calls++;
      const socket = await connectTransport(`unix:${socketPath}`);
      sockets[slot] = socket;
      return socket;
    },
    connections,
    requestTimeoutMs: 20_000,
    backoff,
    log,
  });
  links.push(link);
  return link;
}

/** A promise the test resolves: handlers wait on it so requests stay in flight. */
function gate(): { promise: Promise<void>; open(): void } {
  let open = () => {};
  const promise = new Promise<void>((resolve) => (open = resolve));
  return { promise, open };
}

async function until(condition: () => boolean): Promise<void> {
  while (!condition()) await new Promise((resolve) => setTimeout(resolve, 5));
}

beforeEach(async () => {
  directory = await mkdtemp(path.join(os.tmpdir(), 'ni-lanes-'));
  socketPath = path.join(directory, 'enclave.sock');
  enclave = await startEnclave();
  enclave.handlers.set('echo', async (fields) => ({ body: fields.get('body') }));
  enclave.handlers.set('ohttp', async (fields) => ({ bytes: (fields.get('body') as Uint8Array).byteLength }));
});

afterEach(async () => {
  for (const link of links.splice(0)) link.close();
  await enclave.close();
  await rm(directory, { recursive: true, force: true });
});

describe('link connections', () => {
  it('keeps an upload, large bodies and small requests on lanes of their own, so none waits for the upload', async () => {
    const chunks = gate();
    enclave.handlers.set('model.chunk', async () => {
      await chunks.promise;
      return {};
    });
    enclave.handlers.set('model.end', async () => ({ model: new Map([['name', 'm']]) }));
    const link = newLink(4);
    link.start();
    await link.ready();
    await until(() => link.openConnections === 4);

    // 20 MiB in flight: more than the enclave reads from one connection (16 MiB) before pausing it,
    // so anything queued behind the upload on its connection would wait for the chunks' gate.
    const chunkBytes = 1024 * 1024;
    async function* source() {
      for (let index = 0; index < 20; index++) yield new Uint8Array(chunkBytes);
    }
    let uploaded = false;
    const upload = uploadModel(link, 'm', 20 * chunkBytes, source(), { chunkBytes, window: 20 }).then(
      (model) => {
        uploaded = true;
        return model;
      },
    );
    await until(() => enclave.seen.some(({ type }) => type === 'model.chunk'));
    const largeReply = await link.request('ohttp', { body: new Uint8Array(256 * 1024) });
    expect(largeReply.get('bytes')).toBe(256 * 1024);
    const replies = await Promise.all(
      Array.from({ length: 60 }, (_, index) => link.request('echo', { body: new Uint8Array([index]) })),
    );
    replies.forEach((fields, index) => expect([...(fields.get('body') as Uint8Array)]).toEqual([index]));
    // Every small request answered while the upload still waits for its chunks.
    expect(uploaded).toBe(false);
    chunks.open();
    await upload;
    expect(uploaded).toBe(true);

    const on = (type: string) =>
      new Set(enclave.seen.filter((entry) => entry.type === type).map(({ connection }) => connection));
    const bulk = on('model.load');
    expect(bulk.size).toBe(1);
    expect(on('model.chunk')).toEqual(bulk);
    expect(on('model.end')).toEqual(bulk);
    const large = on('ohttp');
    expect(large.size).toBe(1);
    const small = on('echo');
    expect(small.size).toBe(2); // spread over the two small-request lanes
    for (const connection of [...bulk, ...large]) expect(small.has(connection)).toBe(false);
    for (const connection of bulk) expect(large.has(connection)).toBe(false);
  });

  it('loses one connection without the link going down, and that connection reconnects', async () => {
    const release = gate();
    enclave.handlers.set('gated', async () => {
      await release.promise;
      return {};
    });
    const sockets: Socket[] = [];
    const link = newLink(4, sockets);
    let hookRuns = 0;
    link.onConnect(async () => {
      hookRuns += 1;
    });
    const states: string[] = [];
    link.on('state', (state: string) => states.push(state));
    link.start();
    await link.ready();
    await until(() => link.openConnections === 4);

    // Three requests on each small-request lane (2 and 3, least busy first), then lane 2's socket breaks.
    const pending = Array.from({ length: 6 }, () => codeOfAsync(() => link.request('gated')));
    await until(() => enclave.seen.filter(({ type }) => type === 'gated').length === 6);
    sockets[2]?.destroy();
    await until(() => link.openConnections === 3);
    expect(link.state).toBe('ready');
    const echo = await link.request('echo', { body: new Uint8Array([7]) });
    expect([...(echo.get('body') as Uint8Array)]).toEqual([7]);
    release.open();
    const codes = await Promise.all(pending);
    expect(codes.filter((code) => code === 'ERR_LINK_UNAVAILABLE')).toHaveLength(3);
    expect(codes.filter((code) => code === 'accepted')).toHaveLength(3);

    await until(() => link.openConnections === 4);
    expect(sockets).toHaveLength(5);
    expect(states).toEqual(['syncing', 'ready']);
    expect(hookRuns).toBe(1); // the enclave kept its state: nothing to resync
    expect(link.reconnects).toBe(0);
  });

  it('fails an upload whose connection drops instead of moving it to another connection', async () => {
    const chunks = gate();
    enclave.handlers.set('model.chunk', async () => {
      await chunks.promise;
      return {};
    });
    const sockets: Socket[] = [];
    const link = newLink(3, sockets);
    link.start();
    await link.ready();
    await until(() => link.openConnections === 3);
    async function* source() {
      for (let index = 0; index < 8; index++) yield new Uint8Array(64 * 1024);
    }
    const upload = codeOfAsync(() =>
      uploadModel(link, 'm', 8 * 64 * 1024, source(), { chunkBytes: 64 * 1024, window: 4 }),
    );
    await until(() => enclave.seen.some(({ type }) => type === 'model.chunk'));
    const bulk = enclave.seen.find(({ type }) => type === 'model.load')?.connection;
    sockets[0]?.destroy();
    expect(await upload).toBe('ERR_LINK_UNAVAILABLE');
    chunks.open();
    const elsewhere = enclave.seen.filter(
      ({ type, connection }) => type.startsWith('model.') && connection !== bulk,
    );
    expect(elsewhere).toEqual([]);
    expect(link.state).toBe('ready');
  });

  it('cannot hold more connections than the enclave allows, and serves on the ones it got', async () => {
    await enclave.close();
    enclave = await startEnclave({ maxConnections: 3 });
    enclave.handlers.set('echo', async (fields) => ({ body: fields.get('body') }));
    // A parent configured (or compromised) to open 8, and a second one beside it. Refused
    // connections retry only after a minute, so the counts below are stable.
    const slow = { initialMs: 60_000, maxMs: 60_000 };
    const events: Array<Record<string, unknown> & { event: string }> = [];
    const greedy = newLink(8, [], slow, (_level, event, details) => events.push({ event, ...details }));
    greedy.start();
    await until(() => enclave.server.stats.refusedConnections === 5 && greedy.openConnections === 3);
    await greedy.ready();
    const other = newLink(8, [], slow);
    other.start();
    await until(() => enclave.server.stats.refusedConnections === 13 && other.openConnections === 0);
    expect(enclave.server.stats.connections).toBe(3);
    expect(greedy.openConnections).toBe(3);
    expect(other.state).toBe('connecting');
    // The parent logs why: the enclave's refusal, by code only.
    expect(
      events.filter(
        (entry) => entry.event === 'link.closed_by_enclave' && entry.code === 'ERR_LINK_OVERLOADED',
      ),
    ).toHaveLength(5);
    const reply = await greedy.request('echo', { body: new Uint8Array([1]) });
    expect([...(reply.get('body') as Uint8Array)]).toEqual([1]);
  });

  it('takes the connection count from the configuration, within the enclave’s default limit', () => {
    const region = { aws: { region: 'eu-west-1' } };
    expect(resolveConfig(ParentConfigSchema, region, {}).enclave.connections).toBe(4);
    expect(
      resolveConfig(ParentConfigSchema, region, { NITRO_INFER_ENCLAVE_CONNECTIONS: '2' }).enclave.connections,
    ).toBe(2);
    expect(() => resolveConfig(ParentConfigSchema, region, { NITRO_INFER_ENCLAVE_CONNECTIONS: '9' })).toThrow(
      /connections/,
    );
    expect(
      () => new EnclaveLink({ connect: () => Promise.reject(new Error('unused')), connections: 0 }),
    ).toThrow(RangeError);
  });
});
