/**
 * SIGTERM drains on both sides, with real child processes: the parent (`nitro-infer parent`) and
 * the enclave (`nitro-infer enclave`, the local stack's child). After SIGTERM readiness is false at
 * once and a new request is refused with 503 and a code that says why, while a slow inference
 * already in flight (the test build's worker holds runs of `slow` for a while) completes; then the
 * process exits 0.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient } from '../../client/index.ts';
import type { ClientPolicy } from '../../client/index.ts';
import { createSealStream } from '../../shared/sealing/index.ts';
import type { V2InferenceRequest } from '../../shared/inference/v2.ts';
import { startLocalStack } from '../../sim/local-stack.ts';
import type { LocalStack } from '../../sim/local-stack.ts';
import { denseLayerModel } from '../../sim/onnx-builder.ts';
import { PROJECT_ROOT } from '../helpers/fixtures.ts';
import { TestLinkClient } from '../helpers/link-client.ts';

/** How long the worker holds each run of `slow`: long enough to signal and probe meanwhile. */
const SLOW_MS = 4_000;

let directory = '';
let stack: LocalStack;
let policy: ClientPolicy;
const enclaveLines: string[] = [];
const request: V2InferenceRequest = {
  inputs: [{ name: 'X', shape: [1, 2], datatype: 'FP32', data: [1, 2] }],
};

async function load(name: string): Promise<void> {
  const bytes = denseLayerModel(name, Float32Array.from([1, 2, 3, 4, 5, 6]), new Float32Array(3));
  const sha384 = createHash('sha384').update(bytes).digest('hex');
  const sealer = createSealStream({ kms: stack.operator, keyArn: stack.keyArn, model: { name, sha384 } });
  Readable.from([bytes]).pipe(sealer);
  const file = path.join(directory, `${name}.sealed`);
  await writeFile(file, await buffer(sealer));
  const response = await fetch(`${stack.url}/admin/models/${name}`, {
    method: 'PUT',
    headers: { authorization: `Bearer ${stack.adminToken}`, 'content-type': 'application/json' },
    body: JSON.stringify({ source: `file://${file}` }),
  });
  expect(response.status).toBe(200);
}

async function until(condition: () => boolean | Promise<boolean>, what: string): Promise<void> {
  for (let attempt = 0; attempt < 200; attempt++) {
    if (await condition()) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`gave up waiting for ${what}`);
}

async function get(url: string): Promise<{ status: number; code?: string; retryAfter: string | null }> {
  const response = await fetch(url);
  const body = (await response.json().catch(() => ({}))) as { error?: { code: string } };
  return {
    status: response.status,
    ...(body.error === undefined ? {} : { code: body.error.code }),
    retryAfter: response.headers.get('retry-after'),
  };
}

/** `nitro-infer parent` as a child process on the stack's enclave; resolves once it serves. */
async function spawnParent(): Promise<{ child: ChildProcess; url: string; exit: Promise<number | string> }> {
  const config = path.join(directory, 'parent-child.json');
  await writeFile(
    config,
    JSON.stringify({
      mode: 'simulation',
      http: { host: '127.0.0.1', port: 0 },
      enclave: { address: `unix:${path.join(directory, 'enclave.sock')}` },
      admin: { tokensFile: stack.files.adminTokens },
      aws: { region: stack.region },
    }),
  );
  const child = spawn(
    process.execPath,
    [path.join(PROJECT_ROOT, 'bin', 'nitro-infer.js'), 'parent', '--config', config],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
      // The credentials it pushes to the enclave (the default provider chain reads these).
      env: {
        ...process.env,
        AWS_ACCESS_KEY_ID: stack.kms.info.accessKeyId,
        AWS_SECRET_ACCESS_KEY: stack.kms.info.secretAccessKey,
      },
    },
  );
  const exit = new Promise<number | string>((resolve) =>
    child.once('exit', (code, signal) => resolve(signal ?? code ?? 'unknown')),
  );
  const lines: string[] = [];
  const url = await new Promise<string>((resolve, reject) => {
    const onLine = (line: string) => {
      lines.push(line);
      if (line.startsWith('{"ready":"parent"')) resolve((JSON.parse(line) as { url: string }).url);
    };
    createInterface({ input: child.stdout! }).on('line', onLine);
    createInterface({ input: child.stderr! }).on('line', onLine);
    void exit.then((status) => reject(new Error(`the parent exited (${status}):\n${lines.join('\n')}`)));
  });
  return { child, url, exit };
}

beforeAll(async () => {
  directory = await mkdtemp(path.join(os.tmpdir(), 'ni-drain-'));
  stack = await startLocalStack({
    stateDirectory: directory,
    httpPort: 0,
    isolateNetwork: false,
    // The parent hears of the enclave's drain through telemetry: poll often enough to see it.
    parent: { enclave: { telemetryIntervalMs: 250 } },
    enclaveEnv: { NITRO_INFER_TEST_WORKER_DELAY_ON_MODEL: `slow:${SLOW_MS}` },
    onEnclaveLine: (line) => enclaveLines.push(line),
  });
  policy = { pcrs: await readFile(stack.files.pcrs, 'utf8'), roots: [stack.pki.rootCertificate] };
  await load('slow');
}, 180_000);

afterAll(async () => {
  await stack?.close();
  await rm(directory, { recursive: true, force: true });
});

describe('SIGTERM drains', () => {
  it('the parent: not ready at once, new requests 503 ERR_HTTP_DRAINING, the slow one completes, exit 0', async () => {
    const parent = await spawnParent();
    try {
      await until(
        async () => (await get(`${parent.url}/v2/health/ready`)).status === 200,
        'the parent to be ready',
      );
      const client = createClient({ endpoint: parent.url, policy });
      await client.attest();
      const slow = client.infer('slow', request);
      // In flight once the parent's link holds it (a models.watch long poll is always there too).
      const inFlight = async () =>
        /nitro_infer_enclave_link_in_flight ([2-9]|\d{2,})/.test(
          await (await fetch(`${parent.url}/metrics`)).text(),
        );
      await until(inFlight, 'the slow inference to be in flight');

      parent.child.kill('SIGTERM');
      await until(
        async () => (await get(`${parent.url}/v2/health/ready`)).status === 503,
        'readiness to go false',
      );
      expect(await get(`${parent.url}/v2/health/ready`)).toMatchObject({
        code: 'ERR_HTTP_DRAINING',
        retryAfter: '1',
      });
      await expect(client.infer('slow', request)).rejects.toMatchObject({ code: 'ERR_HTTP_DRAINING' });
      expect((await get(`${parent.url}/v2/health/live`)).status).toBe(200);

      const result = await slow;
      expect(result.response.outputs[0]!.shape).toEqual([1, 3]);
      expect(await parent.exit).toBe(0);
    } finally {
      parent.child.kill('SIGKILL');
    }
  }, 60_000);

  it('the enclave: not ready at once, new requests ERR_LINK_DRAINING (503), the slow one completes, exit 0', async () => {
    const client = createClient({ endpoint: stack.url, policy });
    await client.attest();
    const slow = client.infer('slow', request);
    // In flight once the enclave counts it (its telemetry's request aggregate, on a connection of
    // our own: each connection has its own poll budget).
    const probe = await TestLinkClient.connect(path.join(directory, 'enclave.sock'));
    await until(async () => {
      await new Promise((resolve) => setTimeout(resolve, 250));
      const answer = await probe.request('telemetry.poll', { max: 1 });
      return (answer.fields.get('requests') as Map<string, number> | undefined)?.get('inFlight') === 1;
    }, 'the slow inference to be in flight');
    probe.close();

    process.kill(stack.enclave.pid!, 'SIGTERM');
    await until(() => enclaveLines.some((line) => line.includes('"enclave.draining"')), 'the drain to start');
    const status = await stack.parent.link.request('status');
    expect({ ready: status.get('ready'), draining: status.get('draining') }).toEqual({
      ready: false,
      draining: true,
    });
    await expect(client.infer('slow', request)).rejects.toMatchObject({ code: 'ERR_LINK_DRAINING' });
    await until(
      async () => (await get(`${stack.url}/v2/health/ready`)).code === 'ERR_LINK_DRAINING',
      "the parent's readiness to follow the enclave's drain",
    );

    const result = await slow;
    expect(result.response.outputs[0]!.shape).toEqual([1, 3]);
    expect(await stack.enclave.exitStatus()).toBe(0);
    expect(enclaveLines.some((line) => line.includes('"enclave.drained"'))).toBe(true);
  }, 60_000);
});
