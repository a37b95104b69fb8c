/**
 * The SDK's call behaviour (issue 12 item 5): concurrent first calls share one attestation;
 * `timeoutMs` and `signal` end a call with a typed error, per call and client-wide; network
 * failures (refused, DNS, TLS) are `ERR_CLIENT_UNREACHABLE` with the system code, never a bare
 * TypeError. No timing is asserted: the deadlines only have to fire.
 */
import { createServer } from 'node:https';
import { createServer as createHttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import { createClient } from '../../../client/index.ts';
import type { ClientOptions } from '../../../client/index.ts';
import { SimulatedCa } from '../../../sim/simulated-ca.ts';
import { codeOf, codeOfAsync } from '../../helpers/codes.ts';
import { PCR0, attestations, fakeOhttpParent } from '../../helpers/ohttp-parent.ts';

const policy = (root?: Uint8Array) => ({
  pcrs: { 0: PCR0 },
  ...(root === undefined ? {} : { roots: [root] }),
});

/** A fetch that never answers, but ends when its signal fires (as fetch does). */
const silentFetch = (calls: string[]) =>
  (async (input: string | URL | Request, init?: RequestInit) => {
    calls.push(String(input));
    return new Promise<Response>((_resolve, reject) => {
      const signal = init?.signal;
      if (signal === undefined || signal === null) return;
      if (signal.aborted) reject(signal.reason);
      signal.addEventListener('abort', () => reject(signal.reason), { once: true });
    });
  }) as typeof fetch;

const silentClient = (options: Partial<ClientOptions> = {}) => {
  const calls: string[] = [];
  const client = createClient({
    endpoint: 'http://parent.invalid',
    policy: policy(),
    fetch: silentFetch(calls),
    ...options,
  });
  return { client, calls };
};

describe('client: single-flight attestation', () => {
  it('five concurrent first calls share one attestation', async () => {
    const parent = await fakeOhttpParent();
    const client = createClient({
      endpoint: 'http://parent.invalid',
      policy: policy(parent.rootCertificate),
      fetch: parent.fetch,
    });
    parent.hold();
    const calls = [client.models(), client.models(), client.attest(), client.models(), client.attest()];
    parent.release();
    await Promise.all(calls);
    expect(attestations(parent.requests)).toBe(1);
    const [first, second] = await Promise.all([calls[2], calls[4]]);
    expect(first).toBe(second);
  });

  it('one caller giving up does not fail the others sharing the flight', async () => {
    const parent = await fakeOhttpParent();
    const client = createClient({
      endpoint: 'http://parent.invalid',
      policy: policy(parent.rootCertificate),
      fetch: parent.fetch,
    });
    parent.hold();
    const impatient = new AbortController();
    const gaveUp = codeOfAsync(() => client.attest({ signal: impatient.signal }));
    const patient = client.attest();
    impatient.abort();
    expect(await gaveUp).toBe('ERR_CLIENT_ABORTED');
    parent.release();
    expect((await patient).moduleId).toContain('i-0123456789abcdef0');
    expect(attestations(parent.requests)).toBe(1);
  });

  it('after a flight ends, the next attest() fetches a new one', async () => {
    const parent = await fakeOhttpParent();
    const client = createClient({
      endpoint: 'http://parent.invalid',
      policy: policy(parent.rootCertificate),
      fetch: parent.fetch,
    });
    await client.attest();
    await client.attest();
    expect(attestations(parent.requests)).toBe(2);
  });
});

describe('client: timeoutMs and signal', () => {
  it('a per-call timeout → ERR_CLIENT_TIMEOUT', async () => {
    const { client } = silentClient();
    expect(await codeOfAsync(() => client.attest({ timeoutMs: 20 }))).toBe('ERR_CLIENT_TIMEOUT');
  });

  it('the client-wide timeout applies to every call, also infer', async () => {
    const { client } = silentClient({ timeoutMs: 20 });
    expect(
      await codeOfAsync(() => client.infer('m', [{ name: 'x', shape: [1], datatype: 'FP32', data: [1] }])),
    ).toBe('ERR_CLIENT_TIMEOUT');
  });

  it('an aborted signal → ERR_CLIENT_ABORTED; one aborted before the call sends nothing', async () => {
    const { client, calls } = silentClient();
    const controller = new AbortController();
    const pending = codeOfAsync(() => client.models({ signal: controller.signal }));
    controller.abort();
    expect(await pending).toBe('ERR_CLIENT_ABORTED');
    expect(calls).toHaveLength(1);
    expect(await codeOfAsync(() => client.models({ signal: AbortSignal.abort() }))).toBe(
      'ERR_CLIENT_ABORTED',
    );
    expect(calls).toHaveLength(1);
  });

  it('the client-wide signal ends its calls too', async () => {
    const controller = new AbortController();
    const { client } = silentClient({ signal: controller.signal });
    const pending = codeOfAsync(() => client.attest());
    controller.abort();
    expect(await pending).toBe('ERR_CLIENT_ABORTED');
  });

  it('invalid options are ERR_CLIENT_OPTIONS_INVALID', async () => {
    expect(codeOf(() => silentClient({ timeoutMs: 0 }))).toBe('ERR_CLIENT_OPTIONS_INVALID');
    expect(codeOf(() => silentClient({ timeoutMs: Number.NaN }))).toBe('ERR_CLIENT_OPTIONS_INVALID');
    const { client } = silentClient();
    expect(await codeOfAsync(() => client.attest({ signal: {} as AbortSignal }))).toBe(
      'ERR_CLIENT_OPTIONS_INVALID',
    );
  });
});

describe('client: ERR_CLIENT_UNREACHABLE', () => {
  it('connection refused', async () => {
    const server = createHttpServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    await new Promise((resolve) => server.close(resolve));
    const client = createClient({
      endpoint: `http://127.0.0.1:${port}`,
      policy: policy(),
    });
    const error = await client.attest().catch((failure: unknown) => failure);
    expect(error).toMatchObject({ code: 'ERR_CLIENT_UNREACHABLE' });
    expect((error as Error).message).toContain('ECONNREFUSED');
  });

  it('a name that does not resolve (the error fetch raises for it)', async () => {
    const client = createClient({
      endpoint: 'https://parent.invalid',
      policy: policy(),
      fetch: (async () => {
        throw new TypeError('fetch failed', {
          cause: Object.assign(new Error('getaddrinfo ENOTFOUND parent.invalid'), { code: 'ENOTFOUND' }),
        });
      }) as typeof fetch,
    });
    const error = await client.attest().catch((failure: unknown) => failure);
    expect(error).toMatchObject({ code: 'ERR_CLIENT_UNREACHABLE' });
    expect((error as Error).message).toBe('cannot reach https://parent.invalid (ENOTFOUND)');
  });

  it('a TLS certificate the client does not trust', async () => {
    const ca = SimulatedCa.create();
    const identity = ca.issueServer(['127.0.0.1']);
    const server = createServer(
      { key: identity.keyPem, cert: identity.certificatePem },
      (_request, response) => response.end('{}'),
    );
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = server.address() as AddressInfo;
      const client = createClient({ endpoint: `https://127.0.0.1:${port}`, policy: policy() });
      expect(await codeOfAsync(() => client.attest())).toBe('ERR_CLIENT_UNREACHABLE');
    } finally {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });
});
