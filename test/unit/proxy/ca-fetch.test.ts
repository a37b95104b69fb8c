/**
 * `--ca-bundle`: TLS to the parent verified against the given CA and no other. A server whose
 * certificate chains to the bundle is reached (status, headers and body bytes intact); one with a
 * certificate from another CA is refused with fetch's own network error shape. An aborted call
 * settles at once with an AbortError, as fetch does, so the SDK's timeouts and aborts apply.
 */
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fetchWithCa } from '../../../proxy/ca-fetch.ts';
import { SimulatedCa } from '../../../sim/simulated-ca.ts';

const trusted = SimulatedCa.create();
const other = SimulatedCa.create();
let server: https.Server;
let url = '';
let silentUrl = '';
const received: Buffer[] = [];
/** A parent that accepts the request and never answers. */
let silent: https.Server;

beforeAll(async () => {
  const identity = trusted.issueServer(['localhost']);
  server = https.createServer(
    { key: identity.keyPem, cert: identity.certificatePem },
    (request, response) => {
      const parts: Buffer[] = [];
      request.on('data', (part: Buffer) => parts.push(part));
      request.on('end', () => {
        received.push(Buffer.concat(parts));
        response.writeHead(201, {
          'content-type': 'message/ohttp-res',
          'x-echo': request.headers['content-type'] ?? '',
        });
        response.end(Buffer.from([0, 1, 2, 255]));
      });
    },
  );
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `https://localhost:${(server.address() as AddressInfo).port}/.well-known/ohttp-gateway`;
  silent = https.createServer({ key: identity.keyPem, cert: identity.certificatePem }, (request) => {
    request.resume();
  });
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
  silentUrl = `https://localhost:${(silent.address() as AddressInfo).port}/.well-known/ohttp-gateway`;
});

afterAll(async () => {
  for (const each of [server, silent]) {
    each.closeAllConnections();
    await new Promise((resolve) => each.close(resolve));
  }
});

describe('fetchWithCa', () => {
  it('reaches a parent whose certificate chains to the bundle, bytes intact', async () => {
    const reply = await fetchWithCa(trusted.certificatePem)(url, {
      method: 'POST',
      headers: { 'content-type': 'message/ohttp-req' },
      body: new Uint8Array([9, 8, 7]),
    });
    expect(reply.status).toBe(201);
    expect(reply.headers.get('content-type')).toBe('message/ohttp-res');
    expect(reply.headers.get('x-echo')).toBe('message/ohttp-req');
    expect([...new Uint8Array(await reply.arrayBuffer())]).toEqual([0, 1, 2, 255]);
    expect([...received.at(-1)!]).toEqual([9, 8, 7]);
  });

  it('refuses a certificate from another CA, as a network error', async () => {
    const failure = await fetchWithCa(other.certificatePem)(url).catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(TypeError);
    expect(String((failure as TypeError).cause)).toMatch(/certificate|self.signed|verify/i);
  });

  it('rejects with an AbortError when the signal fires while the parent never answers', async () => {
    const controller = new AbortController();
    const pending = fetchWithCa(trusted.certificatePem)(silentUrl, {
      method: 'POST',
      body: new Uint8Array([1]),
      signal: controller.signal,
    }).catch((error: unknown) => error);
    // Abort once the parent holds the request, not before the connection exists.
    await new Promise<void>((resolve) => silent.once('request', () => resolve()));
    controller.abort();
    const failure = (await pending) as Error;
    expect(failure.name).toBe('AbortError');
  });

  it('rejects at once, sending nothing, when the signal has already fired', async () => {
    const before = received.length;
    const failure = (await fetchWithCa(trusted.certificatePem)(url, {
      method: 'POST',
      body: new Uint8Array([1]),
      signal: AbortSignal.abort(),
    }).catch((error: unknown) => error)) as Error;
    expect(failure.name).toBe('AbortError');
    expect(received.length).toBe(before);
  });
});
