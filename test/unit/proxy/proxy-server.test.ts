/**
 * The proxy's own decisions, with a stand-in SDK client: nothing is forwarded before an attestation
 * passes (and the ready route says why it did not); an answer whose receipt does not verify is
 * withheld; only /v2 is served; the verb refuses a non-loopback address unless told; a request
 * whose Host does not name the proxy (DNS rebinding) or whose Origin is a web page is refused.
 */
import { request as httpRequest } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import type { Attestation, ForwardRequest, NitroInferClient } from '../../../client/index.ts';
import { startProxy } from '../../../proxy/proxy-server.ts';
import type { RunningProxy } from '../../../proxy/proxy-server.ts';
import { isLoopback, parseListen, proxyCommand } from '../../../scripts/proxy-command.ts';
import { AttestationError, ClientError } from '../../../shared/errors.ts';
import { codeOfAsync } from '../../helpers/codes.ts';

const ATTESTATION = { moduleId: 'i-0-enc0', verifiedAt: 1, models: [] } as unknown as Attestation;
const SECRET = 'canary-7f3a';

function fakeClient(options: {
  attest: () => Promise<Attestation>;
  forward?: (request: ForwardRequest) => Promise<never>;
}) {
  const forwarded: ForwardRequest[] = [];
  const client = {
    attest: options.attest,
    forward: async (request: ForwardRequest) => {
      forwarded.push(request);
      if (options.forward !== undefined) return options.forward(request);
      return {
        status: 200,
        headers: [['content-type', 'application/json']],
        content: new TextEncoder().encode('{}'),
        attestation: ATTESTATION,
      };
    },
  } as unknown as NitroInferClient;
  return { client, forwarded };
}

let proxy: RunningProxy | undefined;
afterEach(async () => {
  await proxy?.close();
  proxy = undefined;
});

const post = (url: string, body: unknown) =>
  fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });

/** A request with headers fetch will not let us set (Host); answers status and parsed body. */
function raw(
  url: string,
  path: string,
  headers: Record<string, string>,
  method = 'POST',
): Promise<{ status: number; body: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const outgoing = httpRequest(new URL(path, url), { method, headers }, (incoming) => {
      const parts: Buffer[] = [];
      incoming.on('data', (part: Buffer) => parts.push(part));
      incoming.on('end', () =>
        resolve({
          status: incoming.statusCode ?? 0,
          body: JSON.parse(Buffer.concat(parts).toString() || '{}') as Record<string, unknown>,
        }),
      );
    });
    outgoing.on('error', reject);
    outgoing.end(method === 'POST' ? '{}' : undefined);
  });
}

describe('the local proxy', () => {
  it('forwards nothing while the attestation fails, and says why on /v2/health/ready', async () => {
    let attempts = 0;
    const { client, forwarded } = fakeClient({
      attest: async () => {
        attempts++;
        throw new AttestationError('ERR_ATTESTATION_PCR_MISMATCH', 'PCR0 differs');
      },
    });
    proxy = await startProxy({ client, host: '127.0.0.1', port: 0 });
    const ready = await fetch(`${proxy.url}/v2/health/ready`);
    expect(ready.status).toBe(503);
    expect(await ready.json()).toMatchObject({
      ready: false,
      attested: false,
      code: 'ERR_ATTESTATION_PCR_MISMATCH',
    });
    const infer = await post(`${proxy.url}/v2/models/m/infer`, { inputs: [] });
    expect(infer.status).toBe(503);
    expect(await infer.json()).toMatchObject({
      code: 'ERR_ATTESTATION_PCR_MISMATCH',
      error: expect.stringMatching(/nothing was forwarded/),
    });
    expect(forwarded).toHaveLength(0);
    // Each refused call tried again: a fixed enclave is picked up without a restart.
    expect(attempts).toBeGreaterThanOrEqual(3);
    expect((await fetch(`${proxy.url}/v2/health/live`)).status).toBe(200);
  });

  it('forwards method, path, body headers and bytes unchanged once attested', async () => {
    const { client, forwarded } = fakeClient({ attest: async () => ATTESTATION });
    proxy = await startProxy({ client, host: '127.0.0.1', port: 0 });
    const body = new Uint8Array([123, 125, 0, 1, 2, 255]);
    const reply = await fetch(`${proxy.url}/v2/models/m/versions/abc/infer`, {
      method: 'POST',
      headers: {
        'content-type': 'application/octet-stream',
        'inference-header-content-length': '2',
        'x-other': '1',
      },
      body,
    });
    expect(reply.status).toBe(200);
    expect(forwarded).toHaveLength(1);
    expect(forwarded[0]).toMatchObject({
      method: 'POST',
      path: '/v2/models/m/versions/abc/infer',
      model: 'm',
      requireAttested: true,
      requireReceipt: true,
      headers: [
        ['content-type', 'application/octet-stream'],
        ['inference-header-content-length', '2'],
      ],
    });
    expect([...forwarded[0]!.body!]).toEqual([...body]);
  });

  it('withholds an answer whose receipt does not verify', async () => {
    const { client } = fakeClient({
      attest: async () => ATTESTATION,
      forward: async () => {
        throw new ClientError('ERR_RECEIPT_INVALID', 'receipt: bad signature');
      },
    });
    proxy = await startProxy({ client, host: '127.0.0.1', port: 0 });
    const reply = await post(`${proxy.url}/v2/models/m/infer`, { inputs: [{ name: SECRET }] });
    expect(reply.status).toBe(502);
    const text = await reply.text();
    expect(JSON.parse(text)).toMatchObject({ code: 'ERR_RECEIPT_INVALID' });
    expect(text).not.toContain(SECRET);
  });

  it('attests again before the next request after a receipt failed, without resending the failed one', async () => {
    let attests = 0;
    let calls = 0;
    const { client, forwarded } = fakeClient({
      attest: async () => {
        attests++;
        return ATTESTATION;
      },
      forward: async () => {
        calls++;
        if (calls === 1)
          throw new ClientError('ERR_RECEIPT_INVALID', 'receipt: the digest is not the attested one');
        return { status: 200, headers: [], content: new Uint8Array(0), attestation: ATTESTATION } as never;
      },
    });
    proxy = await startProxy({ client, host: '127.0.0.1', port: 0 });
    expect(attests).toBe(1);
    expect((await post(`${proxy.url}/v2/models/m/infer`, {})).status).toBe(502);
    expect(forwarded).toHaveLength(1);
    expect((await post(`${proxy.url}/v2/models/m/infer`, {})).status).toBe(200);
    expect(attests).toBe(2);
    expect((await post(`${proxy.url}/v2/models/m/infer`, {})).status).toBe(200);
    expect(attests).toBe(2);
  });

  it('serves /v2 routes only', async () => {
    const { client, forwarded } = fakeClient({ attest: async () => ATTESTATION });
    proxy = await startProxy({ client, host: '127.0.0.1', port: 0 });
    const reply = await fetch(`${proxy.url}/v1/attestation`);
    expect(reply.status).toBe(404);
    expect(await reply.json()).toMatchObject({ code: 'ERR_HTTP_NOT_FOUND', error: expect.any(String) });
    expect((await fetch(`${proxy.url}/v2/models/m`, { method: 'DELETE' })).status).toBe(405);
    expect(forwarded).toHaveLength(0);
  });
});

describe('the local proxy against web pages', () => {
  const json = { 'content-type': 'application/json' };
  const port = () => new URL(proxy!.url).port;

  it('refuses a Host that does not name it (DNS rebinding), forwarding nothing', async () => {
    const { client, forwarded } = fakeClient({ attest: async () => ATTESTATION });
    proxy = await startProxy({ client, host: '127.0.0.1', port: 0 });
    for (const host of ['evil.example', `evil.example:${port()}`, '127.0.0.1:1']) {
      const reply = await raw(proxy.url, '/v2/models/m/infer', { ...json, host });
      expect(reply.status).toBe(403);
      expect(reply.body).toMatchObject({ code: 'ERR_HTTP_FORBIDDEN', error: expect.any(String) });
    }
    // The health routes too: a page must not learn whether an enclave is behind the port.
    expect((await raw(proxy.url, '/v2/health/ready', { host: 'evil.example' }, 'GET')).status).toBe(403);
    expect(forwarded).toHaveLength(0);
  });

  it('refuses a request from a web page (Origin), even one rebound to a good Host', async () => {
    const { client, forwarded } = fakeClient({ attest: async () => ATTESTATION });
    proxy = await startProxy({ client, host: '127.0.0.1', port: 0 });
    for (const origin of ['https://evil.example', 'null', `http://evil.example:${port()}`]) {
      const reply = await raw(proxy.url, '/v2/models/m/infer', { ...json, origin });
      expect(reply.status).toBe(403);
      expect(reply.body).toMatchObject({ code: 'ERR_HTTP_FORBIDDEN' });
    }
    expect(forwarded).toHaveLength(0);
  });

  it('serves a curl-like client by its listen address or localhost, and its own origin', async () => {
    const { client, forwarded } = fakeClient({ attest: async () => ATTESTATION });
    proxy = await startProxy({ client, host: '127.0.0.1', port: 0 });
    expect((await post(`${proxy.url}/v2/models/m/infer`, {})).status).toBe(200);
    for (const host of [`localhost:${port()}`, `LOCALHOST:${port()}`, `[::1]:${port()}`])
      expect((await raw(proxy.url, '/v2/models/m/infer', { ...json, host })).status).toBe(200);
    const origin = `http://127.0.0.1:${port()}`;
    expect((await raw(proxy.url, '/v2/models/m/infer', { ...json, origin })).status).toBe(200);
    expect(forwarded).toHaveLength(5);
  });

  it('with --listen-any accepts any Host, but still refuses a web page', async () => {
    const { client, forwarded } = fakeClient({ attest: async () => ATTESTATION });
    proxy = await startProxy({ client, host: '127.0.0.1', port: 0, anyHost: true });
    const host = 'inference-box.lan:8000';
    expect((await raw(proxy.url, '/v2/models/m/infer', { ...json, host })).status).toBe(200);
    const origin = 'https://evil.example';
    expect((await raw(proxy.url, '/v2/models/m/infer', { ...json, host, origin })).status).toBe(403);
    expect(forwarded).toHaveLength(1);
  });
});

describe('nitro-infer proxy --listen', () => {
  it('parses addresses and knows loopback', () => {
    expect(parseListen('127.0.0.1:8000')).toEqual({ host: '127.0.0.1', port: 8000 });
    expect(parseListen('[::1]:9')).toEqual({ host: '::1', port: 9 });
    expect(isLoopback('127.0.0.1') && isLoopback('::1') && isLoopback('localhost')).toBe(true);
    expect(isLoopback('0.0.0.0') || isLoopback('10.0.0.1') || isLoopback('::')).toBe(false);
    expect(() => parseListen('example.com:80')).toThrow(/--listen/);
    expect(() => parseListen('127.0.0.1')).toThrow(/--listen/);
  });

  it('refuses a non-loopback address without --listen-any, before it contacts anything', async () => {
    const args = [
      '--endpoint',
      'http://127.0.0.1:1',
      '--expect-pcr',
      `0=${'00'.repeat(48)}`,
      '--listen',
      '0.0.0.0:8000',
    ];
    const code = await codeOfAsync(() => proxyCommand(args, () => {}, Promise.resolve()));
    expect(code).toBe('ERR_CLI_USAGE');
  });
});
