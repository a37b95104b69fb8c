/**
 * Issue 10, attack 3, against the enclave as a real child process (the local stack: parent, enclave
 * process, KMS simulator). A second, malicious link connection drives the enclave to its budget —
 * model.load sized to the free budget then a disconnect, six times; loads past the budget;
 * concurrent loads — and the enclave refuses with typed codes while its RSS, read from
 * /proc/<pid>/status, stays under the budget plus a fixed overhead. Then an inference worker dies
 * (a test build's worker exits when it runs the model named in NITRO_INFER_TEST_WORKER_EXIT_ON_MODEL):
 * it is replaced, the enclave tells the parent which models lost sessions, the parent streams them
 * again, and the model serves from every worker.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable, Writable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient } from '../../client/index.ts';
import type { NitroInferClient } from '../../client/index.ts';
import { createSealStream } from '../../shared/sealing/index.ts';
import { exampleDenseModel } from '../../sim/example-models.ts';
import { startLocalStack } from '../../sim/local-stack.ts';
import type { LocalStack } from '../../sim/local-stack.ts';
import { TestLinkClient } from '../helpers/link-client.ts';

const MIB = 1024 * 1024;
const BUDGET_MIB = 512;
/**
 * What the enclave may hold beyond its budget while attacked: the link's per-connection in-flight
 * bytes (16 MiB) and the upload's stream buffer (4 MiB) for each of the few connections here, the
 * Encryption SDK's frame buffers, V8 heap growth and allocator slack. The process's own baseline
 * (Node, two worker threads with ONNX Runtime) is measured before the attack and not counted.
 */
const OVERHEAD_MIB = 160;
const WORKERS = 2;

let directory = '';
let stack: LocalStack;
let socketPath = '';
let client: NitroInferClient;
const enclaveLines: string[] = [];
const parentLines: string[] = [];
const example = exampleDenseModel();
const sealedFiles: Record<string, string> = {};
let sealedDense: Uint8Array;

function memoryOf(pid: number): { rssMib: number; peakMib: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)![1]);
  return { rssMib: kib('VmRSS') / 1024, peakMib: kib('VmHWM') / 1024 };
}

async function seal(name: string, model: Uint8Array): Promise<Uint8Array> {
  const sha384 = createHash('sha384').update(model).digest('hex');
  const stream = createSealStream({ kms: stack.operator, keyArn: stack.keyArn, model: { name, sha384 } });
  Readable.from([model]).pipe(stream);
  return new Uint8Array(await buffer(stream));
}

async function adminLoad(name: string): Promise<{ status: number; code?: string }> {
  const response = await fetch(`${stack.url}/admin/models/${name}`, {
    method: 'PUT',
    headers: { authorization: `Bearer ${stack.adminToken}`, 'content-type': 'application/json' },
    body: JSON.stringify({ source: `file://${sealedFiles[name]}` }),
  });
  const body = (await response.json()) as { error?: { code: string } };
  return { status: response.status, ...(body.error === undefined ? {} : { code: body.error.code }) };
}

async function status(): Promise<Map<string, unknown>> {
  const link = await TestLinkClient.connect(socketPath);
  try {
    return (await link.request('status')).fields as Map<string, unknown>;
  } finally {
    link.socket.destroy();
  }
}

async function until(condition: () => Promise<boolean>, what: string): Promise<void> {
  for (let attempt = 0; attempt < 600; attempt++) {
    if (await condition()) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`gave up waiting for ${what}`);
}

/**
 * The largest model.load the enclave accepts, found as an attacker would: bisection in MiB steps,
 * one connection per probe, dropped at once (abandoning the upload). Every refusal must be typed.
 */
async function largestAccepted(refused: Set<string>): Promise<number> {
  let low = 0; // largest size known to be accepted (MiB)
  let high = BUDGET_MIB + 1; // smallest size known to be refused (MiB)
  while (high - low > 1) {
    const middle = Math.floor((low + high) / 2);
    const link = await TestLinkClient.connect(socketPath);
    const code = await link.code('model.load', { name: 'probe', size: middle * MIB });
    link.socket.destroy();
    await link.closed;
    if (code === 'ok') low = middle;
    else {
      refused.add(code);
      high = middle;
    }
    // Wait until the abandoned probe's claim is back, so the next probe sees the whole budget.
    await until(async () => {
      const memory = (await status()).get('memory') as Map<string, number> | undefined;
      return memory === undefined || memory.get('usedBytes') === memory.get('bufferBytes');
    }, 'the probe to be released');
  }
  return low * MIB;
}

/** model.load of `size` on `link`, retried while an abandoned upload is still being released. */
async function loadOnce(link: TestLinkClient, name: string, size: number, refused: Set<string>) {
  await until(async () => {
    const code = await link.code('model.load', { name, size });
    if (code !== 'ok') refused.add(code);
    return code === 'ok';
  }, `model.load of ${size} bytes to be accepted`);
}

beforeAll(async () => {
  directory = await mkdtemp(path.join(os.tmpdir(), 'ni-mem-'));
  stack = await startLocalStack({
    stateDirectory: directory,
    httpPort: 0,
    inferenceWorkers: WORKERS,
    memoryBudgetMib: BUDGET_MIB,
    // The attacker's own link clients below need connection slots beside the parent's (the enclave
    // serves 8 at most; the parent would keep 4 by default).
    parent: { enclave: { connections: 2 } },
    enclaveEnv: { NITRO_INFER_TEST_WORKER_EXIT_ON_MODEL: 'poison' },
    onEnclaveLine: (line) => enclaveLines.push(line),
    logger: pino(
      { level: 'info' },
      new Writable({
        write(chunk, _encoding, done) {
          parentLines.push(String(chunk));
          done();
        },
      }),
    ),
  });
  socketPath = path.join(directory, 'enclave.sock');
  sealedDense = await seal('dense', example.bytes);
  for (const [name, bytes] of [
    ['dense', sealedDense],
    ['poison', await seal('poison', example.bytes)],
  ] as const) {
    sealedFiles[name] = path.join(directory, `${name}.sealed`);
    await writeFile(sealedFiles[name], bytes);
  }
  client = createClient({
    endpoint: stack.url,
    policy: { pcrs: await readFile(stack.files.pcrs, 'utf8'), roots: [stack.pki.rootCertificate] },
  });
}, 180_000);

afterAll(async () => {
  await stack?.close();
  await rm(directory, { recursive: true, force: true });
});

describe('the memory budget bounds the enclave process', () => {
  it('refuses a malicious link with ERR_MODEL_TOO_LARGE while RSS stays under budget + overhead', async () => {
    const pid = stack.enclave.pid!;
    const baseline = memoryOf(pid).rssMib;
    const ceiling = baseline + BUDGET_MIB + OVERHEAD_MIB;

    // Six load/disconnect cycles, each sized to the free budget, each sending a real artifact's
    // chunk first (so plaintext is written) and dropping the connection before model.end.
    const refused = new Set<string>();
    const size = await largestAccepted(refused);
    for (let cycle = 0; cycle < 6; cycle++) {
      const link = await TestLinkClient.connect(socketPath);
      await loadOnce(link, 'dense', size, refused);
      await link.code('model.chunk', { name: 'dense', data: sealedDense });
      link.socket.destroy();
      await link.closed;
      expect(memoryOf(pid).rssMib).toBeLessThan(ceiling);
    }
    expect(refused).toEqual(new Set(['ERR_MODEL_TOO_LARGE']));
    // The budget counts a load's buffer and its sessions in every worker: far less than the
    // budget fits in one load (the sessions' share), and the buffer is reused cycle after cycle.
    expect(size).toBeLessThan(BUDGET_MIB * MIB);
    await until(async () => {
      const memory = (await status()).get('memory') as Map<string, number>;
      return (
        memory.get('usedBytes') === memory.get('bufferBytes') && memory.get('bufferBytes')! <= size + MIB
      );
    }, 'one idle buffer to be all that is left');

    // Past the budget; and past any artifact size (refused as malformed before the budget is asked).
    const probe = await TestLinkClient.connect(socketPath);
    expect(await probe.code('model.load', { name: 'big', size: BUDGET_MIB * MIB + 1 })).toBe(
      'ERR_MODEL_TOO_LARGE',
    );
    expect(await probe.code('model.load', { name: 'huge', size: 1024 * 1024 * MIB })).toBe(
      'ERR_MODEL_LOAD_FAILED',
    );

    // Concurrent loads from several connections, each as large as one alone may be: at most one
    // fits at a time, the others are refused, and none of this shows in RSS.
    const links = await Promise.all(Array.from({ length: 4 }, () => TestLinkClient.connect(socketPath)));
    const codes = await Promise.all(
      links.map((link, index) => link.code('model.load', { name: `c${index}`, size })),
    );
    expect(codes.filter((code) => code === 'ok')).toHaveLength(1);
    expect(codes.filter((code) => code === 'ERR_MODEL_TOO_LARGE')).toHaveLength(3);
    for (const link of [...links, probe]) link.socket.destroy();
    await Promise.all([...links, probe].map((link) => link.closed));

    // Every reservation came back once the connections were gone; what is left is the pool's idle
    // buffer, counted (it still exists) and ready for the next load.
    await until(async () => {
      const memory = (await status()).get('memory') as Map<string, number>;
      return memory.get('usedBytes') === memory.get('bufferBytes');
    }, 'the attacker reservations to be released');
    const after = memoryOf(pid);
    expect(after.rssMib).toBeLessThan(ceiling);
    expect(after.peakMib).toBeLessThan(ceiling);

    // The enclave is up and a legitimate load and inference succeed.
    await until(async () => (await adminLoad('dense')).status === 200, 'the operator load to succeed');
    const result = await client.infer('dense', example.request);
    expect(result.response.outputs[0]!.shape).toEqual([1, 4]);
    const final = memoryOf(pid);
    console.info(
      `enclave RSS ${baseline.toFixed(0)} MiB before, ${final.rssMib.toFixed(0)} MiB after, peak ${final.peakMib.toFixed(0)} MiB; ceiling ${ceiling.toFixed(0)} MiB; largest load ${(size / MIB).toFixed(0)} MiB`,
    );
    expect(final.peakMib).toBeLessThan(ceiling);
  }, 180_000);
});

describe('a dead inference worker', () => {
  it('is replaced, and the parent streams the models it held again', async () => {
    expect(await adminLoad('dense')).toMatchObject({ status: 200 });
    expect(await adminLoad('poison')).toMatchObject({ status: 200 });
    const before = (await status()).get('workers') as Map<string, number>;

    // The test build's worker exits when it runs `poison`: the request fails, nothing else does.
    await expect(client.infer('poison', example.request)).rejects.toMatchObject({
      code: 'ERR_INFERENCE_FAILED',
    });
    await until(async () => {
      const current = await status();
      const workers = current.get('workers') as Map<string, number>;
      const models = current.get('models') as Map<string, unknown>[];
      const dense = models.find((model) => model.get('name') === 'dense');
      return (
        workers.get('restarts') === before.get('restarts')! + 1 &&
        workers.get('alive') === WORKERS &&
        (current.get('lost') as string[]).length === 0 &&
        dense?.get('sessions') === WORKERS
      );
    }, 'the worker to be replaced and its models restored');
    expect(enclaveLines.some((line) => line.includes('inference.worker_died'))).toBe(true);
    expect(enclaveLines.some((line) => line.includes('inference.worker_replaced'))).toBe(true);
    expect(parentLines.some((line) => line.includes('model.restored') && line.includes('"dense"'))).toBe(
      true,
    );
    // Every worker serves `dense` again (requests spread over both).
    for (let index = 0; index < 4; index++) {
      const result = await client.infer('dense', example.request);
      expect(result.response.outputs[0]!.shape).toEqual([1, 4]);
    }
  }, 120_000);
});
