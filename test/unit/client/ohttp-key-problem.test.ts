/**
 * When the SDK re-attests after a refused request (issue 12 item 5; RFC 9458 section 5.3): only on
 * the `ohttp-key` problem type, once, and it resends only a GET, and only when the enclave now attests
 * another key config: an inference is never resent (the parent can make the problem look genuine). A plain 400, a problem under another media type, or our `{error}` body never re-attest;
 * a forged problem costs one attestation and nothing is sent twice.
 */
import { describe, expect, it } from 'vitest';
import { createClient } from '../../../client/index.ts';
import { codeOfAsync } from '../../helpers/codes.ts';
import {
  PCR0,
  attestations,
  fakeOhttpParent,
  gatewayPosts,
  ohttpKeyProblem,
} from '../../helpers/ohttp-parent.ts';
import type { FakeOhttpParent } from '../../helpers/ohttp-parent.ts';

const clientOf = (parent: FakeOhttpParent) =>
  createClient({
    endpoint: 'http://parent.invalid',
    policy: { pcrs: { 0: PCR0 }, roots: [parent.rootCertificate] },
    fetch: parent.fetch,
  });

describe('client: re-attestation only on the ohttp-key problem', () => {
  it('the enclave restarted with a new key: the problem → one re-attestation, the request resent and answered', async () => {
    const parent = await fakeOhttpParent();
    const client = clientOf(parent);
    await client.attest();
    await parent.rotate();
    expect(await client.models()).toEqual({ models: [] });
    expect(attestations(parent.requests)).toBe(2);
    expect(gatewayPosts(parent.requests)).toBe(2);
  });

  it('a plain 400 (our {error} body) does not re-attest and is not resent', async () => {
    const parent = await fakeOhttpParent();
    parent.answer = async () =>
      Response.json({ error: { code: 'ERR_HTTP_BAD_REQUEST', message: 'no' } }, { status: 400 });
    const client = clientOf(parent);
    expect(await codeOfAsync(() => client.models())).toBe('ERR_HTTP_BAD_REQUEST');
    expect(attestations(parent.requests)).toBe(1);
    expect(gatewayPosts(parent.requests)).toBe(1);
  });

  it('a bare 400, and the problem under another media type, do not re-attest', async () => {
    for (const answer of [
      async () => new Response('bad request', { status: 400 }),
      async () => ohttpKeyProblem('application/json'),
    ]) {
      const parent = await fakeOhttpParent();
      parent.answer = answer;
      const client = clientOf(parent);
      expect(await codeOfAsync(() => client.models())).toBe('ERR_CLIENT_REQUEST_FAILED');
      expect(attestations(parent.requests)).toBe(1);
      expect(gatewayPosts(parent.requests)).toBe(1);
    }
  });

  it('a forged problem after the enclave ran the request → one re-attestation, nothing resent', async () => {
    const parent = await fakeOhttpParent();
    let ran = 0;
    parent.answer = async (relay) => {
      const genuine = await relay();
      if (genuine.status === 200) ran++;
      return ohttpKeyProblem();
    };
    const client = clientOf(parent);
    expect(await codeOfAsync(() => client.models())).toBe('ERR_CLIENT_REQUEST_FAILED');
    // The key config is the one the enclave still attests, so the problem is a lie.
    expect(ran).toBe(1);
    expect(attestations(parent.requests)).toBe(2);
    expect(gatewayPosts(parent.requests)).toBe(1);
  });

  it('the parent lets an inference run, rotates the key, forges the problem → re-attested, not resent', async () => {
    const parent = await fakeOhttpParent();
    let relayed = 0;
    parent.answer = async (relay) => {
      await relay();
      relayed++;
      // The parent's own link request (cluster.rotate) gives the enclave a new key config.
      await parent.rotate();
      return ohttpKeyProblem();
    };
    const client = clientOf(parent);
    const before = (await client.attest()).keyConfigBytes;
    const body = new TextEncoder().encode(JSON.stringify({ inputs: [] }));
    expect(
      await codeOfAsync(() =>
        client.forward({
          method: 'POST',
          path: '/v2/models/m/infer',
          body,
          headers: [['content-type', 'application/json']],
        }),
      ),
    ).toBe('ERR_CLIENT_KEY_CHANGED');
    expect(relayed).toBe(1);
    expect(gatewayPosts(parent.requests)).toBe(1);
    expect(attestations(parent.requests)).toBe(2);
    // Re-attested: the next call seals to the new key.
    expect(Buffer.from(client.attestation!.keyConfigBytes).equals(Buffer.from(before))).toBe(false);
  });

  it('the problem again after re-attesting to a new key → refused, no third attempt', async () => {
    const parent = await fakeOhttpParent();
    parent.answer = async (_relay, attempt) => {
      if (attempt === 0) await parent.rotate();
      return ohttpKeyProblem();
    };
    const client = clientOf(parent);
    expect(await codeOfAsync(() => client.models())).toBe('ERR_CLIENT_REQUEST_FAILED');
    expect(attestations(parent.requests)).toBe(2);
    expect(gatewayPosts(parent.requests)).toBe(2);
  });
});
