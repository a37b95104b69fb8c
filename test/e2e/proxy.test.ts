/**
 * `nitro-infer proxy` against the local stack (parent + enclave child process), driven as a
 * KServe/Triton user would: plain `fetch` and curl, JSON bodies, no SDK. Results equal
 * onnxruntime-node run directly; every exchange validates against the Open Inference Protocol's
 * OpenAPI document (../shared/oip); a proxy whose PCR policy the enclave fails forwards nothing and
 * says why on its ready route; the receipt log verifies offline, and tampering is caught.
 */
import { execFile, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { createHash, generateKeyPairSync } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { promisify } from 'node:util';
import ort from 'onnxruntime-node';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient } from '../../client/index.ts';
import type { ClientPolicy } from '../../client/index.ts';
import { startProxy } from '../../proxy/proxy-server.ts';
import type { RunningProxy } from '../../proxy/proxy-server.ts';
import { ReceiptLog } from '../../proxy/receipt-log.ts';
import { receipts } from '../../scripts/receipts-command.ts';
import { decodeCbor, encodeCbor } from '../../shared/cbor.ts';
import { signReceipt, verifyReceipt } from '../../shared/receipts.ts';
import { createSealStream } from '../../shared/sealing/index.ts';
import { exampleDenseModel } from '../../sim/example-models.ts';
import { denseLayerModel } from '../../sim/onnx-builder.ts';
import { startLocalStack } from '../../sim/local-stack.ts';
import type { LocalStack } from '../../sim/local-stack.ts';
import { PROJECT_ROOT } from '../helpers/fixtures.ts';
import { HAVE_OIP_SPEC, OIP_SPEC_ABSENT, oipValidator } from '../helpers/oip-spec.ts';
import type { Exchange, OipValidator } from '../helpers/oip-spec.ts';

const run = promisify(execFile);
const model = exampleDenseModel();
let directory = '';
let stack: LocalStack;
let proxy: RunningProxy;
let refusing: RunningProxy;
let policy: ClientPolicy;
let digest = '';
let receiptFile = '';
let validator: OipValidator | undefined;
const exchanges: Exchange[] = [];
let refusedGatewayCalls = 0;

/** A plain JSON call to the proxy, recorded for the OpenAPI check. */
async function call(base: string, method: string, route: string, body?: unknown) {
  const response = await fetch(base + route, {
    method,
    ...(body === undefined
      ? {}
      : { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }),
  });
  const text = await response.text();
  const json = JSON.parse(text) as Record<string, unknown>;
  exchanges.push({
    method,
    path: route,
    ...(body === undefined ? {} : { requestBody: body }),
    status: response.status,
    responseBody: json,
  });
  return { status: response.status, json, headers: response.headers };
}

async function direct(): Promise<number[]> {
  const session = await ort.InferenceSession.create(model.bytes);
  const input = model.request.inputs[0]!;
  const outputs = await session.run({
    [input.name]: new ort.Tensor('float32', Float32Array.from(input.data as number[]), input.shape),
  });
  await session.release();
  return [...((Object.values(outputs)[0] as ort.Tensor).data as Float32Array)];
}

function expectClose(got: unknown, expected: number[]): void {
  expect(got).toHaveLength(expected.length);
  (got as number[]).forEach((value, index) => expect(value).toBeCloseTo(expected[index]!, 5));
}

/** Seals a model for the stack's KMS key and loads it through the admin API; returns its digest. */
async function sealAndLoad(name: string, bytes: Uint8Array): Promise<string> {
  const sha384 = createHash('sha384').update(bytes).digest('hex');
  const sealer = createSealStream({ kms: stack.operator, keyArn: stack.keyArn, model: { name, sha384 } });
  Readable.from([bytes]).pipe(sealer);
  const file = path.join(directory, `${name}-${sha384.slice(0, 8)}.sealed`);
  await writeFile(file, await buffer(sealer));
  const loaded = await fetch(`${stack.url}/admin/models/${name}`, {
    method: 'PUT',
    headers: { authorization: `Bearer ${stack.adminToken}`, 'content-type': 'application/json' },
    body: JSON.stringify({ source: `file://${file}` }),
  });
  expect(loaded.status).toBe(200);
  return sha384;
}

beforeAll(async () => {
  directory = await mkdtemp(path.join(os.tmpdir(), 'ni-proxy-'));
  receiptFile = path.join(directory, 'receipts.jsonl');
  // The parent's request log would drown the test output; the stack test inspects it, not this one.
  stack = await startLocalStack({
    stateDirectory: directory,
    httpPort: 0,
    logger: pino({ level: 'silent' }),
  });
  policy = { pcrs: await readFile(stack.files.pcrs, 'utf8'), roots: [stack.pki.rootCertificate] };
  digest = await sealAndLoad(model.name, model.bytes);
  proxy = await startProxy({
    client: createClient({ endpoint: stack.url, policy }),
    host: '127.0.0.1',
    port: 0,
    receipts: new ReceiptLog(receiptFile),
  });
  // The same enclave, but a policy pinning another image: the attestation must fail.
  const countingFetch: typeof fetch = (input, init) => {
    if (String(input).endsWith('/.well-known/ohttp-gateway') && init?.method === 'POST')
      refusedGatewayCalls++;
    return fetch(input, init);
  };
  refusing = await startProxy({
    client: createClient({
      endpoint: stack.url,
      policy: { ...policy, pcrs: { 0: '00'.repeat(48) } },
      fetch: countingFetch,
    }),
    host: '127.0.0.1',
    port: 0,
  });
  if (HAVE_OIP_SPEC) validator = await oipValidator();
}, 120_000);

afterAll(async () => {
  await proxy?.close();
  await refusing?.close();
  await stack?.close();
  await rm(directory, { recursive: true, force: true });
});

describe('nitro-infer proxy: plain Open Inference Protocol on loopback, end to end encrypted behind', () => {
  it('serves server metadata, health and model metadata as a KServe client expects', async () => {
    const metadata = await call(proxy.url, 'GET', '/v2');
    expect(metadata.status).toBe(200);
    expect(metadata.json).toMatchObject({ name: 'nitro-infer', extensions: expect.any(Array) });
    expect((await call(proxy.url, 'GET', '/v2/health/live')).json).toEqual({ live: true });
    const ready = await call(proxy.url, 'GET', '/v2/health/ready');
    expect(ready.status).toBe(200);
    expect(ready.json).toMatchObject({ ready: true, attested: true });
    for (const base of [`/v2/models/${model.name}`, `/v2/models/${model.name}/versions/${digest}`]) {
      const described = await call(proxy.url, 'GET', base);
      expect(described.status).toBe(200);
      expect(described.json).toMatchObject({ name: model.name, platform: 'onnx_onnxv1', versions: [digest] });
      expect((await call(proxy.url, 'GET', `${base}/ready`)).json).toMatchObject({ ready: true });
    }
  });

  it('infers through fetch (unversioned and versioned) with outputs equal to onnxruntime-node, id and parameters echoed', async () => {
    const expected = await direct();
    for (const route of [
      `/v2/models/${model.name}/infer`,
      `/v2/models/${model.name}/versions/${digest}/infer`,
    ]) {
      const reply = await call(proxy.url, 'POST', route, {
        ...model.request,
        id: 'job-7',
        parameters: { tag: 'x' },
      });
      expect(reply.status).toBe(200);
      expect(reply.json).toMatchObject({
        model_name: model.name,
        model_version: digest,
        id: 'job-7',
        parameters: { tag: 'x' },
      });
      expectClose((reply.json.outputs as { data: number[] }[])[0]?.data, expected);
      // The receipt comes back too, and it verifies against the attested key.
      expect(reply.headers.get('nitro-infer-receipt')).toMatch(/^[A-Za-z0-9_-]+$/);
    }
  });

  it.skipIf(!existsSync('/usr/bin/curl'))('infers through curl', async () => {
    const { stdout } = await run('curl', [
      '-sS',
      '-H',
      'content-type: application/json',
      '--data-binary',
      JSON.stringify(model.request),
      `${proxy.url}/v2/models/${model.name}/infer`,
    ]);
    const reply = JSON.parse(stdout) as { outputs: { data: number[] }[] };
    expectClose(reply.outputs[0]?.data, await direct());
  });

  it('answers errors as {"error": "<message>", "code"} from inside the encryption', async () => {
    const missing = await call(proxy.url, 'GET', '/v2/models/absent');
    expect(missing.status).toBe(404);
    expect(missing.json).toMatchObject({ code: 'ERR_MODEL_NOT_FOUND', error: expect.any(String) });
    const wrongVersion = await call(
      proxy.url,
      'POST',
      `/v2/models/${model.name}/versions/1/infer`,
      model.request,
    );
    expect(wrongVersion).toMatchObject({ status: 404, json: { code: 'ERR_MODEL_NOT_FOUND' } });
    const invalid = await call(proxy.url, 'POST', `/v2/models/${model.name}/infer`, {
      inputs: [{ name: 'X', shape: [1], datatype: 'FP32', data: [1] }],
    });
    expect(invalid).toMatchObject({ status: 400, json: { code: 'ERR_INFERENCE_INPUT_INVALID' } });
    // An unattested model is refused before anything is sent.
    const unattested = await call(proxy.url, 'POST', '/v2/models/absent/infer', model.request);
    expect(unattested).toMatchObject({ status: 502, json: { code: 'ERR_CLIENT_MODEL_NOT_ATTESTED' } });
  });

  it('forwards nothing when the attestation fails, and says why on /v2/health/ready', async () => {
    const ready = await call(refusing.url, 'GET', '/v2/health/ready');
    expect(ready.status).toBe(503);
    expect(ready.json).toMatchObject({ ready: false, attested: false, code: 'ERR_ATTESTATION_PCR_MISMATCH' });
    expect(String(ready.json.error)).toMatch(/not attested/);
    const infer = await call(refusing.url, 'POST', `/v2/models/${model.name}/infer`, model.request);
    expect(infer.status).toBe(503);
    expect(infer.json).toMatchObject({ code: 'ERR_ATTESTATION_PCR_MISMATCH' });
    expect((await call(refusing.url, 'GET', '/v2')).status).toBe(503);
    expect(refusedGatewayCalls).toBe(0);
    expect(refusing.status().attested).toBe(false);
  });

  it.skipIf(!HAVE_OIP_SPEC)('every exchange above conforms to the OpenAPI document', () => {
    expect(exchanges.length).toBeGreaterThan(15);
    const covered = new Set<string>();
    for (const exchange of exchanges) {
      const { operationId, problems } = validator!.check(exchange);
      covered.add(operationId);
      expect({ route: `${exchange.method} ${exchange.path} → ${exchange.status}`, problems }).toEqual({
        route: `${exchange.method} ${exchange.path} → ${exchange.status}`,
        problems: [],
      });
    }
    // Every route the document declares was exercised.
    expect([...covered].sort()).toEqual(
      [
        'get-v2',
        'get-v2-health-live',
        'get-v2-health-ready',
        'get-v2-models-$-modelName-versions-$-modelVersion',
        'get-v2-models-$-modelName-versions-$-modelVersion-ready',
        'post-v2-models-$-MODEL_NAME-versions-$-MODEL_VERSION-infer',
      ].sort(),
    );
  });

  it.skipIf(HAVE_OIP_SPEC)(OIP_SPEC_ABSENT, () => {});

  it('the validator itself rejects a non-conforming exchange', () => {
    if (validator === undefined) return;
    const bad = validator.check({ method: 'GET', path: '/v2', status: 200, responseBody: { name: 'x' } });
    expect(bad.problems.length).toBeGreaterThan(0);
    const badError = validator.check({
      method: 'GET',
      path: '/v2/models/m',
      status: 404,
      responseBody: { error: { code: 'X' } },
    });
    expect(badError.problems.length).toBeGreaterThan(0);
  });
});

describe('the nitro-infer proxy verb', () => {
  it('runs from the command line, serves inference, stops on SIGTERM; its receipt log verifies', async () => {
    const bin = path.join(PROJECT_ROOT, 'bin', 'nitro-infer.js');
    const log = path.join(directory, 'cli-receipts.jsonl');
    const child = spawn(
      process.execPath,
      [
        bin,
        'proxy',
        '--endpoint',
        stack.url,
        '--pcrs',
        stack.files.pcrs,
        '--root',
        stack.files.root,
        '--listen',
        '127.0.0.1:0',
        '--receipts',
        log,
      ],
      { cwd: PROJECT_ROOT, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const lines: string[] = [];
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    try {
      const url = await new Promise<string>((resolve, reject) => {
        createInterface({ input: child.stdout! }).on('line', (line) => {
          lines.push(line);
          const match = /listening on (http:\/\/\S+) \(enclave attested\)/.exec(line);
          if (match !== null) resolve(match[1]!);
        });
        createInterface({ input: child.stderr! }).on('line', (line) => lines.push(line));
        void exited.then((code) => reject(new Error(`proxy exited ${code}:\n${lines.join('\n')}`)));
      });
      const reply = await fetch(`${url}/v2/models/${model.name}/infer`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(model.request),
      });
      expect(reply.status).toBe(200);
      expectClose(
        ((await reply.json()) as { outputs: { data: number[] }[] }).outputs[0]?.data,
        await direct(),
      );
    } finally {
      child.kill('SIGTERM');
    }
    expect(await exited).toBe(0);
    const verified = await receipts(['verify', log, '--pcrs', stack.files.pcrs, '--root', stack.files.root]);
    expect(verified).toMatchObject({ exitCode: 0, stdout: 'verified: 1 attestations, 1 receipts verified' });
  }, 60_000);
});

describe('nitro-infer receipts verify', () => {
  const verify = (file: string, pcrs = stack.files.pcrs) =>
    receipts(['verify', file, '--pcrs', pcrs, '--root', stack.files.root, '--json']);

  it('verifies the log the proxy wrote', async () => {
    const text = await readFile(receiptFile, 'utf8');
    const lines = text
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as { type: string });
    expect(lines[0]?.type).toBe('attestation');
    expect(lines.filter((line) => line.type === 'receipt').length).toBeGreaterThanOrEqual(3);
    const result = await verify(receiptFile);
    expect(result.exitCode).toBe(0);
    expect(JSON.parse(result.stdout!)).toMatchObject({ ok: true, attestations: 1, failures: [] });
  });

  it('detects a tampered receipt line', async () => {
    const lines = (await readFile(receiptFile, 'utf8')).trim().split('\n');
    const index = lines.findIndex((line) => line.includes('"receipt"'));
    const entry = JSON.parse(lines[index]!) as { receipt: string };
    // Rewrite the signed payload (another model digest) and keep the old signature.
    const [payload, signature] = decodeCbor(Buffer.from(entry.receipt, 'base64url'), {
      maxBytes: 4096,
      maxItems: 64,
      maxDecodedBytes: 16384,
    }) as [Uint8Array, Uint8Array];
    const flipped = new Uint8Array(payload);
    flipped[flipped.length - 1]! ^= 1;
    lines[index] = JSON.stringify({
      ...entry,
      receipt: Buffer.from(encodeCbor([flipped, signature])).toString('base64url'),
    });
    const tampered = path.join(directory, 'tampered.jsonl');
    await writeFile(tampered, `${lines.join('\n')}\n`);
    const result = await verify(tampered);
    expect(result.exitCode).toBe(1);
    const verdict = JSON.parse(result.stdout!) as { failures: { line: number; reason: string }[] };
    expect(verdict.failures).toEqual([
      { line: index + 1, reason: expect.stringMatching(/ERR_RECEIPT_INVALID/) },
    ]);
  });

  it('detects receipts re-signed under a substituted receipt key', async () => {
    const lines = (await readFile(receiptFile, 'utf8')).trim().split('\n');
    const attestation = JSON.parse(lines[0]!) as { receiptKey: string };
    const { privateKey, publicKey } = generateKeyPairSync('ed25519');
    const raw = Buffer.from(publicKey.export({ format: 'jwk' }).x!, 'base64url');
    const original = new Uint8Array(Buffer.from(attestation.receiptKey, 'base64'));
    const forged = lines.map((line, index) => {
      const entry = JSON.parse(line) as { type: string; receipt?: string };
      if (index === 0) return JSON.stringify({ ...entry, receiptKey: raw.toString('base64') });
      if (entry.type !== 'receipt') return line;
      const receipt = verifyReceipt(entry.receipt!, original);
      return JSON.stringify({
        ...entry,
        receipt: signReceipt({ ...receipt, sha384: 'cd'.repeat(48) }, privateKey),
      });
    });
    const file = path.join(directory, 'forged.jsonl');
    await writeFile(file, `${forged.join('\n')}\n`);
    const verdict = JSON.parse((await verify(file)).stdout!) as {
      ok: boolean;
      failures: { line: number; reason: string }[];
    };
    expect(verdict.ok).toBe(false);
    expect(verdict.failures[0]).toEqual({
      line: 1,
      reason: 'the receipt key is not the one the document binds',
    });
    // Receipts after a refused attestation are refused too, not checked against the forged key.
    expect(verdict.failures.slice(1).every((failure) => /no verified attestation/.test(failure.reason))).toBe(
      true,
    );
  });

  it('refuses the log under another PCR policy', async () => {
    const pcrs = path.join(directory, 'other-pcrs.json');
    const measured = JSON.parse(await readFile(stack.files.pcrs, 'utf8')) as {
      Measurements: Record<string, string>;
    };
    measured.Measurements.PCR0 = '00'.repeat(48);
    await writeFile(pcrs, JSON.stringify(measured));
    const result = await verify(receiptFile, pcrs);
    expect(result.exitCode).toBe(1);
    expect(result.stdout).toMatch(/ERR_ATTESTATION_PCR_MISMATCH/);
  });

  it('detects a receipt moved under an attestation that lists another version of its model', async () => {
    const before = (await readFile(receiptFile, 'utf8')).trim().split('\n');
    // The parent loads another version of the model under the same name.
    const weights = Float32Array.from({ length: 64 }, (_, index) => Math.cos(index) / 4);
    await sealAndLoad(model.name, denseLayerModel(model.name, weights, new Float32Array(4)));
    const infer = () =>
      fetch(`${proxy.url}/v2/models/${model.name}/infer`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(model.request),
      });
    // Its receipt names a digest the cached attestation does not list: withheld, not resent…
    const first = await infer();
    expect(first.status).toBe(502);
    expect(await first.json()).toMatchObject({ code: 'ERR_RECEIPT_INVALID' });
    // …and the next request is sent under a fresh attestation that lists the new version.
    expect((await infer()).status).toBe(200);
    const after = (await readFile(receiptFile, 'utf8')).trim().split('\n');
    const added = after.slice(before.length).map((line) => JSON.parse(line) as { type: string });
    expect(added.map((entry) => entry.type)).toEqual(['attestation', 'receipt']);
    expect(JSON.parse((await verify(receiptFile)).stdout!)).toMatchObject({ ok: true, attestations: 2 });
    // The attack: that receipt moved under the first attestation (same enclave, so the same receipt
    // key and key config): its signature holds, but the first attestation never listed its digest.
    const moved = path.join(directory, 'moved.jsonl');
    await writeFile(moved, `${before[0]}\n${after.at(-1)}\n`);
    const verdict = JSON.parse((await verify(moved)).stdout!) as {
      failures: { line: number; reason: string }[];
    };
    expect(verdict.failures).toEqual([
      { line: 2, reason: expect.stringMatching(/digest the attestation does not list/) },
    ]);
  });
});
