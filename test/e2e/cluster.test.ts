/**
 * Replicas behind one load balancer (DESIGN.md 7): two parent + enclave pairs sharing one KMS key,
 * a round-robin relay in front. With the OHTTP cluster key every replica binds the same key config,
 * so a client attests once and every request succeeds whichever replica serves it. Without it the
 * replicas' key configs differ — the property the cluster key exists for.
 */
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient } from '../../client/index.ts';
import { createSealStream } from '../../shared/sealing/index.ts';
import { exampleDenseModel } from '../../sim/example-models.ts';
import { startLocalStack } from '../../sim/local-stack.ts';
import type { LocalStack } from '../../sim/local-stack.ts';

let directory = '';
const stacks: LocalStack[] = [];
let relay: http.Server;
let relayUrl = '';
const served = [0, 0];
const example = exampleDenseModel();

/** Round-robin HTTP relay, as an ALB spreads requests over instances. */
async function startRelay(backends: string[]): Promise<void> {
  let next = 0;
  relay = http.createServer((request, response) => {
    const index = next++ % backends.length;
    served[index]! += 1;
    const target = new URL(request.url ?? '/', backends[index]);
    const upstream = http.request(target, { method: request.method, headers: request.headers }, (reply) => {
      response.writeHead(reply.statusCode ?? 502, reply.headers);
      reply.pipe(response);
    });
    upstream.on('error', () => response.destroy());
    request.pipe(upstream);
  });
  await new Promise<void>((resolve) => relay.listen(0, '127.0.0.1', resolve));
  relayUrl = `http://127.0.0.1:${(relay.address() as AddressInfo).port}`;
}

async function loadExample(stack: LocalStack, sealed: string): Promise<void> {
  const loaded = await fetch(`${stack.url}/admin/models/example`, {
    method: 'PUT',
    headers: { authorization: `Bearer ${stack.adminToken}`, 'content-type': 'application/json' },
    body: JSON.stringify({ source: `file://${sealed}` }),
  });
  expect(loaded.status).toBe(200);
}

async function keyConfigOf(stack: LocalStack): Promise<string> {
  const reply = await fetch(`${stack.url}/v1/attestation`);
  return ((await reply.json()) as { keyConfig: string }).keyConfig;
}

beforeAll(async () => {
  directory = await mkdtemp(path.join(os.tmpdir(), 'ni-cl-'));
  const logger = pino({ level: 'silent' });
  const first = await startLocalStack({
    stateDirectory: path.join(directory, 'a'),
    httpPort: 0,
    clusterKey: true,
    logger,
  });
  stacks.push(first);
  stacks.push(
    await startLocalStack({
      stateDirectory: path.join(directory, 'b'),
      httpPort: 0,
      replicaOf: first,
      clusterKey: { blobFile: first.files.clusterKey! },
      logger,
    }),
  );
  // A third replica without the cluster key: its own ephemeral key.
  stacks.push(
    await startLocalStack({
      stateDirectory: path.join(directory, 'c'),
      httpPort: 0,
      replicaOf: first,
      logger,
    }),
  );
  const sha384 = createHash('sha384').update(example.bytes).digest('hex');
  const sealer = createSealStream({
    kms: first.operator,
    keyArn: first.keyArn,
    model: { name: 'example', sha384 },
  });
  Readable.from([example.bytes]).pipe(sealer);
  const sealed = path.join(directory, 'example.sealed');
  await writeFile(sealed, await buffer(sealer));
  for (const stack of stacks) await loadExample(stack, sealed);
  await startRelay([first.url, stacks[1]!.url]);
}, 180_000);

afterAll(async () => {
  await new Promise<void>((resolve) => (relay ? relay.close(() => resolve()) : resolve()));
  for (const stack of [...stacks].reverse()) await stack.close();
  await rm(directory, { recursive: true, force: true });
});

describe('OHTTP cluster key across replicas', () => {
  it('replicas with the cluster key bind the same key config; one without it does not', async () => {
    const [a, b, c] = await Promise.all(stacks.map(keyConfigOf));
    expect(a).toBe(b);
    expect(c).not.toBe(a);
  });

  it('a client attests once through the relay and every request succeeds on either replica', async () => {
    let attestations = 0;
    const counting: typeof fetch = (input, init) => {
      if (String(input).includes('/v1/attestation')) attestations += 1;
      return fetch(input, init);
    };
    const client = createClient({
      endpoint: relayUrl,
      policy: {
        pcrs: await readFile(stacks[0]!.files.pcrs, 'utf8'),
        roots: [stacks[0]!.pki.rootCertificate],
      },
      fetch: counting,
    });
    served.fill(0);
    for (let index = 0; index < 8; index++) {
      const result = await client.infer('example', example.request);
      expect(result.response.outputs[0]!.shape).toEqual([1, 4]);
    }
    expect(attestations).toBe(1);
    expect(served[0]).toBeGreaterThanOrEqual(4);
    expect(served[1]).toBeGreaterThanOrEqual(4);
  });
});
