/**
 * `infer` and the attested model list (issue 10): asked for a model that the attestation it holds
 * does not list, the SDK re-attests; if the fresh attestation does not list it either, it refuses
 * with ERR_CLIENT_MODEL_NOT_ATTESTED and sends no request. The parent here is a fake `fetch` that
 * serves genuine simulated-NSM documents binding the model list it is told to serve, and records
 * every request; no server is needed.
 */
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { createClient } from '../../../client/index.ts';
import { SimulatedNsm } from '../../../enclave/nsm/index.ts';
import { encodeUserData } from '../../../shared/binding.ts';
import type { ModelIdentity } from '../../../shared/binding.ts';
import type { V2Tensor } from '../../../shared/inference/v2.ts';
import { DEFAULT_SYMMETRIC_ALGORITHMS, HPKE_KEM, encodeKeyConfig } from '../../../shared/ohttp/key-config.ts';
import { SimulatedNitroPki } from '../../../sim/index.ts';
import { codeOf, codeOfAsync } from '../../helpers/codes.ts';

const PCR0 = new Uint8Array(48).fill(0x5a);
const model = (name: string): ModelIdentity => ({ name, sha384: 'ab'.repeat(48) });

/** A parent whose attestation replies bind `models()` as they are at the time of each request. */
function fakeParent(models: () => readonly ModelIdentity[], pinned?: Record<string, string>) {
  const pki = SimulatedNitroPki.create();
  const nsm = new SimulatedNsm({
    identity: pki.signingIdentitySource('i-0123456789abcdef0-enc0123456789abcdef'),
    moduleId: 'i-0123456789abcdef0-enc0123456789abcdef',
    bootPcrs: new Map([[0, PCR0]]),
  });
  const keyConfig = encodeKeyConfig({
    keyId: 1,
    kemId: HPKE_KEM.DHKEM_X25519_HKDF_SHA256,
    publicKey: new Uint8Array(randomBytes(32)),
    symmetricAlgorithms: DEFAULT_SYMMETRIC_ALGORITHMS,
  });
  const receiptKey = new Uint8Array(randomBytes(32));
  const requests: string[] = [];
  const fetch = async (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
    const url = new URL(String(input));
    requests.push(`${init?.method ?? 'GET'} ${url.pathname}`);
    if (url.pathname === '/v1/attestation') {
      const served = models();
      const document = await nsm.attest({
        nonce: new Uint8Array(Buffer.from(url.searchParams.get('nonce') ?? '', 'hex')),
        userData: encodeUserData({ ohttpKeyConfig: keyConfig, receiptPublicKey: receiptKey, models: served }),
      });
      const b64 = (bytes: Uint8Array) => Buffer.from(bytes).toString('base64');
      return Response.json({
        document: b64(document),
        keyConfig: b64(keyConfig),
        receiptKey: b64(receiptKey),
        models: served,
      });
    }
    // An answer the SDK cannot open: enough to show that a request was sent.
    return new Response('no', { status: 502 });
  };
  const client = createClient({
    endpoint: 'http://parent.invalid',
    policy: {
      pcrs: { 0: PCR0 },
      roots: [pki.rootCertificate],
      ...(pinned === undefined ? {} : { models: pinned }),
    },
    fetch: fetch as typeof globalThis.fetch,
  });
  return { client, requests };
}

const inferRequests = (requests: readonly string[]) =>
  requests.filter((request) => request === 'POST /.well-known/ohttp-gateway');
const attestations = (requests: readonly string[]) =>
  requests.filter((request) => request === 'GET /v1/attestation');
const tensor: V2Tensor[] = [{ name: 'x', shape: [1], datatype: 'FP32', data: [1] }];

describe('client: infer only for attested models', () => {
  it('a model no fresh attestation lists → ERR_CLIENT_MODEL_NOT_ATTESTED after re-attesting, nothing sent', async () => {
    const { client, requests } = fakeParent(() => [model('known')]);
    await client.attest();
    expect(await codeOfAsync(() => client.infer('hidden', tensor))).toBe('ERR_CLIENT_MODEL_NOT_ATTESTED');
    expect(attestations(requests)).toHaveLength(2); // the cached one did not list it: attested again
    expect(inferRequests(requests)).toHaveLength(0);
  });

  it('also on the first call, with no cached attestation', async () => {
    const { client, requests } = fakeParent(() => []);
    expect(await codeOfAsync(() => client.infer('hidden', tensor))).toBe('ERR_CLIENT_MODEL_NOT_ATTESTED');
    expect(inferRequests(requests)).toHaveLength(0);
  });

  it('control: a model the fresh attestation lists (loaded since the cached one) → the request is sent', async () => {
    let served = [model('known')];
    const { client, requests } = fakeParent(() => served);
    await client.attest();
    served = [model('known'), model('new')];
    // The fake parent answers 502, so the call fails, but only after sending the encrypted request.
    expect(await codeOfAsync(() => client.infer('new', tensor))).toBe('ERR_CLIENT_REQUEST_FAILED');
    expect(attestations(requests)).toHaveLength(2);
    expect(inferRequests(requests)).toHaveLength(1);
  });

  it('a model pinned by digest but attested with another (an older version loaded by the parent) → refused, nothing sent', async () => {
    const { client, requests } = fakeParent(() => [model('known')], { known: 'cd'.repeat(48) });
    expect(await codeOfAsync(() => client.infer('known', tensor))).toBe('ERR_CLIENT_MODEL_NOT_ATTESTED');
    expect(inferRequests(requests)).toHaveLength(0);
  });

  it('control: the pinned digest attested (any case) → the request is sent', async () => {
    const { client, requests } = fakeParent(() => [model('known')], { known: 'AB'.repeat(48) });
    expect(await codeOfAsync(() => client.infer('known', tensor))).toBe('ERR_CLIENT_REQUEST_FAILED');
    expect(inferRequests(requests)).toHaveLength(1);
  });

  it('a pin that is not a SHA-384 is a policy error', () => {
    expect(codeOf(() => fakeParent(() => [], { known: 'abc' }))).toBe('ERR_POLICY_INVALID');
  });

  it('control: metadata of an unlisted model is still asked (the enclave answers 404; no inputs leave)', async () => {
    const { client, requests } = fakeParent(() => [model('known')]);
    expect(await codeOfAsync(() => client.metadata('hidden'))).toBe('ERR_CLIENT_REQUEST_FAILED');
    expect(inferRequests(requests)).toHaveLength(1);
  });
});
