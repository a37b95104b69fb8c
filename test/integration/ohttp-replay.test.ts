/**
 * Replay against the real enclave service over its link (simulated NSM, Unix socket, the link
 * server the parent talks to): the attacker is a second link connection, as a hostile parent has.
 * One captured request sent 100 times gets one answer and 99 typed refusals inside the
 * encryption; the enclave stays up and serves fresh requests; and the SDK, through a relay stand-in
 * that records what it forwards, sends a new `enc` and a Date the enclave accepts every time.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient } from '../../client/index.ts';
import { LinkServer } from '../../enclave/server/link-server.ts';
import { startEnclaveService } from '../../enclave/service.ts';
import type { EnclaveService } from '../../enclave/service.ts';
import { decodeBhttpResponse, encodeBhttpRequest } from '../../shared/ohttp/bhttp.ts';
import type { BhttpResponse } from '../../shared/ohttp/bhttp.ts';
import { REQUEST_HEADER_BYTES, encapsulateRequest } from '../../shared/ohttp/encapsulation.ts';
import {
  OHTTP_KEY_PROBLEM_TYPE,
  PROBLEM_JSON_TYPE,
  X25519_PUBLIC_KEY_BYTES,
  decodeKeyConfig,
} from '../../shared/ohttp/key-config.ts';
import { createSimulatedEnclaveIdentity } from '../../sim/index.ts';
import type { SimulatedEnclaveIdentity } from '../../sim/index.ts';
import { codeOfAsync } from '../helpers/codes.ts';
import { TestLinkClient } from '../helpers/link-client.ts';

let directory = '';
let enclave: SimulatedEnclaveIdentity;
let service: EnclaveService;
let linkServer: LinkServer;
let server: net.Server;
let link: TestLinkClient;

beforeAll(async () => {
  directory = await mkdtemp(path.join(os.tmpdir(), 'nitro-infer-replay-'));
  enclave = await createSimulatedEnclaveIdentity();
  service = await startEnclaveService({
    nsm: enclave.nsm,
    attestationRoots: [enclave.pki.rootCertificate],
    kms: {
      region: 'us-east-1',
      openTransport: () => {
        throw new Error('this test makes no KMS call');
      },
    },
    memoryBudgetBytes: 16 * 1024 * 1024,
    inferenceWorkers: 1,
    log: () => {},
  });
  linkServer = new LinkServer(service.handlers, () => {});
  const socketPath = path.join(directory, 'enclave.sock');
  server = net.createServer((socket) => linkServer.accept(socket));
  await new Promise<void>((resolve) => server.listen(socketPath, resolve));
  link = await TestLinkClient.connect(socketPath);
});

afterAll(async () => {
  link?.close();
  linkServer?.close();
  await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
  await service?.close();
  await rm(directory, { recursive: true, force: true });
});

/** A request as the SDK makes it, sealed to the enclave's key; `date` null leaves the Date out. */
async function sealedRequest(date: string | null = new Date().toUTCString()) {
  const message = encodeBhttpRequest({
    method: 'GET',
    scheme: 'https',
    authority: '',
    path: '/v2/models',
    headers: date === null ? [] : [['date', date]],
    content: new Uint8Array(0),
    trailers: [],
  });
  return encapsulateRequest(decodeKeyConfig(service.ohttpKeys.keyConfig), message);
}

async function relay(body: Uint8Array): Promise<Uint8Array> {
  const response = await link.request('ohttp', { body });
  expect(response.type).toBe('ok');
  return response.fields.get('body') as Uint8Array;
}

/**
 * A relay stand-in for the SDK: what the parent does, over the test's link; records OHTTP bodies.
 * With `forgeRefusal`, it relays each body (the enclave runs it) and then answers a bare 400 — the
 * one refusal a parent can forge, since it is outside the encryption.
 */
function relayFetch(
  forwarded: Uint8Array[],
  forgeRefusal: boolean | 'ohttp-key problem' = false,
  attested: string[] = [],
): typeof fetch {
  return (async (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
    const url = new URL(String(input));
    if (url.pathname === '/v1/attestation') {
      attested.push(url.pathname);
      const reply = await link.request('attest', {
        nonce: new Uint8Array(Buffer.from(url.searchParams.get('nonce')!, 'hex')),
      });
      const base64 = (name: string) => Buffer.from(reply.fields.get(name) as Uint8Array).toString('base64');
      return Response.json({
        document: base64('document'),
        keyConfig: base64('keyConfig'),
        receiptKey: base64('receiptKey'),
        models: reply.fields.get('models'),
      });
    }
    const body = new Uint8Array(init!.body as Uint8Array);
    forwarded.push(body);
    const answer = await relay(body);
    if (forgeRefusal === 'ohttp-key problem') {
      return new Response(JSON.stringify({ type: OHTTP_KEY_PROBLEM_TYPE }), {
        status: 400,
        headers: { 'content-type': PROBLEM_JSON_TYPE },
      });
    }
    if (forgeRefusal) return new Response('bad request', { status: 400 });
    return new Response(answer, { headers: { 'content-type': 'message/ohttp-res' } });
  }) as typeof fetch;
}

const codeIn = (response: BhttpResponse) =>
  (JSON.parse(new TextDecoder().decode(response.content)) as { code?: string }).code;

describe('replays over the enclave link', () => {
  it('one captured request sent 100 times: one answer, 99 ERR_OHTTP_REPLAYED; the enclave stays up', async () => {
    const { encapsulated, opener } = await sealedRequest();
    const replies = await Promise.all(Array.from({ length: 100 }, () => relay(encapsulated)));
    const responses = replies.map((sealed) => decodeBhttpResponse(opener.open(sealed)));
    expect(responses.filter((response) => response.status === 200)).toHaveLength(1);
    const refused = responses.filter((response) => response.status !== 200);
    expect(refused).toHaveLength(99);
    expect(new Set(refused.map(codeIn))).toEqual(new Set(['ERR_OHTTP_REPLAYED']));

    expect(await link.code('status')).toBe('ok');
    const fresh = await sealedRequest();
    expect(decodeBhttpResponse(fresh.opener.open(await relay(fresh.encapsulated))).status).toBe(200);
  });

  it.each([
    ['stale', new Date(Date.now() - 10 * 60_000).toUTCString()],
    ['future', new Date(Date.now() + 10 * 60_000).toUTCString()],
    ['missing', null],
  ])('a %s Date is refused inside the encryption with ERR_OHTTP_DATE_INVALID', async (_, date) => {
    const { encapsulated, opener } = await sealedRequest(date);
    const response = decodeBhttpResponse(opener.open(await relay(encapsulated)));
    expect(response.status).toBe(400);
    expect(codeIn(response)).toBe('ERR_OHTTP_DATE_INVALID');
  });

  it('the SDK sends a fresh enc with an accepted Date on every request', async () => {
    const forwarded: Uint8Array[] = [];
    const client = createClient({
      endpoint: 'http://relay.invalid',
      policy: { pcrs: { 0: enclave.measurements.pcr0 }, roots: [enclave.pki.rootCertificate] },
      fetch: relayFetch(forwarded),
    });
    for (let request = 0; request < 5; request++) expect(await client.models()).toEqual({ models: [] });
    expect(forwarded).toHaveLength(5);
    const encs = forwarded.map((body) =>
      Buffer.from(
        body.subarray(REQUEST_HEADER_BYTES, REQUEST_HEADER_BYTES + X25519_PUBLIC_KEY_BYTES),
      ).toString('hex'),
    );
    // Five different encs, and every request was answered: each carried a Date inside the window.
    expect(new Set(encs).size).toBe(5);
  });

  it('a forged outer 400 after the enclave ran the request does not make the SDK send it again', async () => {
    const forwarded: Uint8Array[] = [];
    const client = createClient({
      endpoint: 'http://relay.invalid',
      policy: { pcrs: { 0: enclave.measurements.pcr0 }, roots: [enclave.pki.rootCertificate] },
      fetch: relayFetch(forwarded, true),
    });
    // The key config the SDK sealed to is the one the enclave still attests: the 400 is a lie, and
    // resending would have the enclave run the same request twice (a fresh enc passes the window).
    expect(await codeOfAsync(() => client.models())).toBe('ERR_CLIENT_REQUEST_FAILED');
    expect(forwarded).toHaveLength(1);
  });

  it('a forged ohttp-key problem after the enclave ran the request costs one re-attestation, no resend', async () => {
    const forwarded: Uint8Array[] = [];
    const attested: string[] = [];
    const client = createClient({
      endpoint: 'http://relay.invalid',
      policy: { pcrs: { 0: enclave.measurements.pcr0 }, roots: [enclave.pki.rootCertificate] },
      fetch: relayFetch(forwarded, 'ohttp-key problem', attested),
    });
    // RFC 9458 section 5.3's problem is unauthenticated: the SDK re-attests, finds the key config
    // unchanged, and does not send the request (which the enclave ran) again.
    expect(await codeOfAsync(() => client.models())).toBe('ERR_CLIENT_REQUEST_FAILED');
    expect(forwarded).toHaveLength(1);
    expect(attested).toHaveLength(2);
  });

  it('an SDK whose clock is two minutes ahead gets the typed ERR_OHTTP_DATE_INVALID', async () => {
    const client = createClient({
      endpoint: 'http://relay.invalid',
      policy: { pcrs: { 0: enclave.measurements.pcr0 }, roots: [enclave.pki.rootCertificate] },
      fetch: relayFetch([]),
      clock: () => Date.now() + 120_000,
    });
    expect(await codeOfAsync(() => client.models())).toBe('ERR_OHTTP_DATE_INVALID');
  });
});
