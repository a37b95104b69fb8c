/**
 * The parents' side of the cluster key (parent/cluster/): real enclave services, real links, each
 * parent's cluster listener on 127.0.0.1 and its ClusterSync. A peer parent that lies about its
 * key costs one failed attempt and the sync moves on to the next peer ahead; a key older than
 * `rotateAfterMs` is rotated and the other member converges; the listener bounds bodies, refuses
 * malformed ones and rate-limits, and the public API has no cluster routes.
 */
import http from 'node:http';
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ClusterSync } from '../../parent/cluster/cluster-sync.ts';
import { buildPeerApp, PEER_RATE_LIMIT_PER_MINUTE } from '../../parent/cluster/peer-app.ts';
import type { PeerApp } from '../../parent/cluster/peer-app.ts';
import { EnclaveLink } from '../../parent/link/enclave-link.ts';
import { startTestEnclave, testClock } from '../helpers/cluster-enclaves.ts';
import type { TestEnclave } from '../helpers/cluster-enclaves.ts';

interface Member {
  readonly enclave: TestEnclave;
  readonly link: EnclaveLink;
  readonly app: PeerApp;
  readonly url: string;
  sync: ClusterSync;
}

let directory = '';
const members: Member[] = [];
let liar: http.Server;
let liarUrl = '';
let liarCalls: string[] = [];
const silent = () => {};

async function member(name: string, pki?: TestEnclave['identity']['pki']): Promise<Member> {
  const enclave = await startTestEnclave(directory, name, pki);
  const link = new EnclaveLink({
    connect: async () => {
      const socket = net.connect(enclave.socketPath);
      await new Promise<void>((resolve, reject) => {
        socket.once('connect', resolve);
        socket.once('error', reject);
      });
      return socket;
    },
    log: silent,
  });
  const app = await buildPeerApp({ link, logger: false });
  const url = await app.listen({ host: '127.0.0.1', port: 0 });
  const created: Member = { enclave, link, app, url, sync: undefined as unknown as ClusterSync };
  return created;
}

const fingerprint = async (m: Member) =>
  Buffer.from((await m.link.request('cluster.status')).get('fingerprint') as Uint8Array).toString('hex');

beforeAll(async () => {
  directory = await mkdtemp(path.join(os.tmpdir(), 'ni-cs-'));
  const first = await member('a');
  members.push(first, await member('b', first.enclave.identity.pki));
  // A peer parent that claims the best key there is, and cannot deliver it.
  liar = http.createServer((request, response) => {
    liarCalls.push(request.url ?? '');
    response.setHeader('content-type', 'application/json');
    if (request.url === '/cluster/v1/status') {
      response.end(
        JSON.stringify({
          epoch: 99,
          createdAt: 0,
          fingerprint: Buffer.alloc(32).toString('base64'),
          keyConfig: '',
        }),
      );
    } else {
      response.statusCode = 403;
      response.end(JSON.stringify({ error: { code: 'ERR_CLUSTER_PEER_UNTRUSTED', message: 'no' } }));
    }
  });
  await new Promise<void>((resolve) => liar.listen(0, '127.0.0.1', resolve));
  liarUrl = `http://127.0.0.1:${(liar.address() as AddressInfo).port}`;
  const [a, b] = members as [Member, Member];
  a.sync = new ClusterSync({ link: a.link, peers: async () => [b.url], intervalMs: 60_000, log: silent });
  b.sync = new ClusterSync({
    link: b.link,
    peers: async () => [liarUrl, a.url],
    intervalMs: 60_000,
    rotateAfterMs: 3_600_000,
    clock: testClock.now,
    log: silent,
  });
  for (const m of members) {
    m.link.start();
    await m.link.ready();
  }
}, 120_000);

afterAll(async () => {
  await new Promise<void>((resolve) => (liar ? liar.close(() => resolve()) : resolve()));
  for (const m of members) {
    m.sync?.close();
    m.link.close();
    await m.app.close();
    await m.enclave.close();
  }
  await rm(directory, { recursive: true, force: true });
});

describe('ClusterSync between parents', () => {
  it('on connect the newer member took the older key, after the lying peer failed', async () => {
    const [a, b] = members as [Member, Member];
    expect(await fingerprint(b)).toBe(await fingerprint(a));
    expect(liarCalls).toContain('/cluster/v1/challenge');
    liarCalls = [];
    expect(await a.sync.sync()).toEqual({ action: 'kept' });
    // The liar still ranks "ahead" of B, is tried, fails; nothing else is ahead.
    expect(await b.sync.sync()).toEqual({ action: 'failed', code: 'ERR_CLUSTER_PEER_UNAVAILABLE' });
    expect(await fingerprint(b)).toBe(await fingerprint(a));
  });

  it('a key older than rotateAfterMs is rotated once no genuine peer is ahead; the other member converges', async () => {
    const [a, b] = members as [Member, Member];
    const before = await fingerprint(a);
    // Without the liar, B sees no one ahead: with its key past the age, it rotates.
    b.sync.close();
    b.sync = new ClusterSync({
      link: b.link,
      peers: async () => [a.url],
      intervalMs: 60_000,
      rotateAfterMs: 3_600_000,
      clock: () => testClock.now() + 3_600_000,
      log: silent,
    });
    expect(await b.sync.sync()).toEqual({ action: 'rotated' });
    expect(await fingerprint(b)).not.toBe(before);
    expect(await a.sync.sync()).toEqual({ action: 'fetched', peer: b.url });
    expect(await fingerprint(a)).toBe(await fingerprint(b));
  });
});

describe('the cluster listener', () => {
  it('refuses a body over the limit (413), a malformed one (400) and unknown routes (404)', async () => {
    const url = members[0]!.url;
    const big = await fetch(`${url}/cluster/v1/share`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ document: 'A'.repeat(40 * 1024) }),
    });
    expect(big.status).toBe(413);
    const extra = await fetch(`${url}/cluster/v1/share`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ document: 'AAAA', more: 1 }),
    });
    expect(extra.status).toBe(400);
    expect(((await extra.json()) as { error: { code: string } }).error.code).toBe('ERR_HTTP_BAD_REQUEST');
    expect((await fetch(`${url}/v1/attestation`)).status).toBe(404);
    // A document that is not one: the enclave's typed refusal, mapped.
    const junk = await fetch(`${url}/cluster/v1/share`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ document: Buffer.from('not a document').toString('base64') }),
    });
    expect(junk.status).toBe(403);
    expect(((await junk.json()) as { error: { code: string } }).error.code).toBe(
      'ERR_CLUSTER_PEER_UNTRUSTED',
    );
  });

  it('rate-limits each address with 429 and Retry-After', async () => {
    const url = members[1]!.url;
    let last: Response | undefined;
    for (let index = 0; index <= PEER_RATE_LIMIT_PER_MINUTE; index++) {
      last = await fetch(`${url}/cluster/v1/status`);
      if (last.status === 429) break;
    }
    expect(last!.status).toBe(429);
    expect(last!.headers.get('retry-after')).not.toBeNull();
    // Still up for the enclave's own parent.
    expect((await members[1]!.link.request('cluster.status')).get('epoch')).toBeGreaterThan(0);
  });
});
