/**
 * `--ca-bundle`: TLS to the parent verified against the given CA and no other. A server whose
 * certificate chains to the bundle is reached (status, headers and body bytes intact); one with a
 * certificate from another CA is refused with fetch's own network error shape.
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
const received: Buffer[] = [];

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
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
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
});
