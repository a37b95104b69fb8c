/**
 * The SDK's node:http transport (issue 11) against a real local HTTP server: what it sends and
 * reads, deadlines and aborts before and during the body, the response bound (declared and
 * streamed), refused and dropped connections, and keep-alive with close(). No timing is asserted:
 * the deadlines only have to fire.
 */
import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { NodeHttpTransport } from '../../../client/node-transport.ts';
import { CallContext, MAX_RESPONSE_BYTES } from '../../../client/transport.ts';

interface Local {
  readonly url: string;
  readonly server: Server;
  readonly sockets: Set<Socket>;
  readonly requests: { method: string; url: string; headers: IncomingMessage['headers']; body: Buffer }[];
}

const servers: Server[] = [];
const transports: NodeHttpTransport[] = [];

afterEach(async () => {
  for (const transport of transports.splice(0)) transport.close();
  for (const server of servers.splice(0)) {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
});

async function local(handle: (request: IncomingMessage, response: ServerResponse) => void): Promise<Local> {
  const requests: Local['requests'] = [];
  const sockets = new Set<Socket>();
  const server = createServer((request, response) => {
    const parts: Buffer[] = [];
    request.on('data', (part: Buffer) => parts.push(part));
    request.on('end', () => {
      requests.push({
        method: request.method ?? '',
        url: request.url ?? '',
        headers: request.headers,
        body: Buffer.concat(parts),
      });
      handle(request, response);
    });
  });
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server, sockets, requests };
}

function transport(): NodeHttpTransport {
  const created = new NodeHttpTransport();
  transports.push(created);
  return created;
}

const failure = (promise: Promise<unknown>) =>
  promise.then(
    () => {
      throw new Error('expected the call to fail');
    },
    (error: unknown) => error as { code?: string; message: string },
  );

describe('client: the node:http transport', () => {
  it('sends method, path, headers and body; returns status, joined headers and the body', async () => {
    const parent = await local((_request, response) => {
      response.writeHead(201, [
        ['content-type', 'message/ohttp-res'],
        ['x-twice', 'a'],
        ['x-twice', 'b'],
      ]);
      response.end(Buffer.from('answer'));
    });
    const reply = await transport().send(
      `${parent.url}/.well-known/ohttp-gateway?x=1`,
      { method: 'POST', headers: { 'content-type': 'message/ohttp-req' }, body: new Uint8Array([1, 2, 3]) },
      new CallContext(undefined, []),
    );
    expect(reply.status).toBe(201);
    expect(reply.header('content-type')).toBe('message/ohttp-res');
    expect(reply.header('x-twice')).toBe('a, b');
    expect(reply.header('x-absent')).toBeNull();
    expect(Buffer.from(reply.bytes).toString()).toBe('answer');
    const [seen] = parent.requests;
    expect(seen).toMatchObject({ method: 'POST', url: '/.well-known/ohttp-gateway?x=1' });
    expect(seen!.headers['content-type']).toBe('message/ohttp-req');
    expect(seen!.headers['content-length']).toBe('3');
    expect([...seen!.body]).toEqual([1, 2, 3]);
  });

  it('keeps the connection alive between calls, and close() ends it', async () => {
    const parent = await local((_request, response) => response.end('{}'));
    const http = transport();
    for (let index = 0; index < 3; index++)
      await http.send(parent.url, { method: 'GET' }, new CallContext(undefined, []));
    expect(parent.requests).toHaveLength(3);
    expect(parent.sockets.size).toBe(1);
    http.close();
    await expect.poll(() => parent.sockets.size).toBe(0);
    // Still usable after close: a new connection.
    const reply = await http.send(parent.url, { method: 'GET' }, new CallContext(undefined, []));
    expect(reply.status).toBe(200);
  });

  it('a deadline before the answer → ERR_CLIENT_TIMEOUT, and the connection is dropped', async () => {
    const parent = await local(() => {});
    const error = await failure(transport().send(parent.url, { method: 'GET' }, new CallContext(20, [])));
    expect(error.code).toBe('ERR_CLIENT_TIMEOUT');
    await expect.poll(() => parent.sockets.size).toBe(0);
  });

  it('a deadline while the body streams in → ERR_CLIENT_TIMEOUT', async () => {
    const parent = await local((_request, response) => {
      response.writeHead(200, { 'content-length': '100' });
      response.write('partial');
    });
    const error = await failure(transport().send(parent.url, { method: 'GET' }, new CallContext(50, [])));
    expect(error.code).toBe('ERR_CLIENT_TIMEOUT');
  });

  it('a signal fired before the call → ERR_CLIENT_ABORTED, and nothing is sent', async () => {
    const parent = await local((_request, response) => response.end('{}'));
    const error = await failure(
      transport().send(parent.url, { method: 'GET' }, new CallContext(undefined, [AbortSignal.abort()])),
    );
    expect(error.code).toBe('ERR_CLIENT_ABORTED');
    expect(parent.requests).toHaveLength(0);
    expect(parent.sockets.size).toBe(0);
  });

  it('a signal fired mid-body → ERR_CLIENT_ABORTED, and the connection is dropped', async () => {
    const controller = new AbortController();
    const parent = await local((_request, response) => {
      response.writeHead(200, { 'content-length': '100' });
      response.write('partial', () => setTimeout(() => controller.abort(), 10));
    });
    const error = await failure(
      transport().send(parent.url, { method: 'GET' }, new CallContext(undefined, [controller.signal])),
    );
    expect(error.code).toBe('ERR_CLIENT_ABORTED');
    await expect.poll(() => parent.sockets.size).toBe(0);
  });

  it('a declared length over the bound is refused before the body is read', async () => {
    const parent = await local((_request, response) => {
      response.writeHead(200, { 'content-length': String(MAX_RESPONSE_BYTES + 1) });
      response.write('x');
    });
    const error = await failure(
      transport().send(parent.url, { method: 'GET' }, new CallContext(undefined, [])),
    );
    expect(error).toMatchObject({ code: 'ERR_CLIENT_REQUEST_FAILED', message: 'the response is too large' });
    await expect.poll(() => parent.sockets.size).toBe(0);
  });

  it('a chunked body that grows past the bound is refused as it streams in', async () => {
    let written = 0;
    const parent = await local((_request, response) => {
      response.writeHead(200, { 'content-type': 'application/octet-stream' });
      const chunk = Buffer.alloc(1024 * 1024);
      const more = () => {
        while (!response.destroyed && written <= 2 * MAX_RESPONSE_BYTES) {
          written += chunk.byteLength;
          if (!response.write(chunk)) return void response.once('drain', more);
        }
        response.end();
      };
      more();
    });
    const error = await failure(
      transport().send(parent.url, { method: 'GET' }, new CallContext(undefined, [])),
    );
    expect(error).toMatchObject({ code: 'ERR_CLIENT_REQUEST_FAILED', message: 'the response is too large' });
    // The server was cut off well before it had sent all it meant to.
    expect(written).toBeLessThan(2 * MAX_RESPONSE_BYTES);
  });

  it('connection refused → ERR_CLIENT_UNREACHABLE with the system code', async () => {
    const parent = await local(() => {});
    await new Promise((resolve) => parent.server.close(resolve));
    const error = await failure(
      transport().send(parent.url, { method: 'GET' }, new CallContext(undefined, [])),
    );
    expect(error.code).toBe('ERR_CLIENT_UNREACHABLE');
    expect(error.message).toBe(`cannot reach ${parent.url} (ECONNREFUSED)`);
  });

  it('a connection dropped mid-body → ERR_CLIENT_UNREACHABLE', async () => {
    const parent = await local((_request, response) => {
      response.writeHead(200, { 'content-length': '100' });
      response.write('partial', () => response.socket?.destroy());
    });
    const error = await failure(
      transport().send(parent.url, { method: 'GET' }, new CallContext(undefined, [])),
    );
    expect(error.code).toBe('ERR_CLIENT_UNREACHABLE');
  });

  it('a URL that is not http(s) → ERR_CLIENT_UNREACHABLE, nothing sent', async () => {
    const error = await failure(
      transport().send('ftp://127.0.0.1/x', { method: 'GET' }, new CallContext(undefined, [])),
    );
    expect(error.code).toBe('ERR_CLIENT_UNREACHABLE');
  });
});
