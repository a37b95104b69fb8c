/**
 * End to end on one machine, every part real: client SDK → HTTP → parent → link (tapped) → enclave
 * child process → worker → back. Two models give the same outputs as onnxruntime-node run
 * directly; receipts verify and bind the right digest. Canary bytes in inputs and model weights
 * never appear in the parent's traffic or logs, in JSON and in binary tensor bodies (raw float
 * bytes) — and do appear where plaintext legitimately is, so the search itself can fail. Wrong expectations fail closed with distinct codes.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable, Writable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import ort from 'onnxruntime-node';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient, verifyReceipt } from '../../client/index.ts';
import type { ClientPolicy } from '../../client/index.ts';
import { encodeInferenceRequest } from '../../client/tensors.ts';
import { createSealStream } from '../../shared/sealing/index.ts';
import { decodeKeyConfigList, encodeKeyConfig, HPKE_KEM } from '../../shared/ohttp/key-config.ts';
import { exampleDenseModel, ocrClassifierModel } from '../../sim/example-models.ts';
import type { ExampleModel } from '../../sim/example-models.ts';
import { startLocalStack } from '../../sim/local-stack.ts';
import type { LocalStack } from '../../sim/local-stack.ts';
import { denseLayerModel } from '../../sim/onnx-builder.ts';
import { codeOfAsync } from '../helpers/codes.ts';
import { LinkTap } from '../helpers/link-tap.ts';

let directory = '';
let stack: LocalStack;
let tap: LinkTap;
let policy: ClientPolicy;
const parentLogs: string[] = [];
const enclaveLogs: string[] = [];
const httpBodies: Buffer[] = [];

// Canaries: 24 random bytes as model weights (6 float32s), and input values with a random tail.
const weightCanary = Float32Array.from({ length: 6 }, () => 0.5 + randomBytes(3).readUIntBE(0, 3) / 2 ** 25);
const inputCanaries = Array.from({ length: 4 }, () => 1000 + randomBytes(3).readUIntBE(0, 3) / 2 ** 24);
const models: ExampleModel[] = [];
const digests = new Map<string, string>();

function canaryModel(): ExampleModel {
  const inputs = 8;
  const outputs = 3;
  const weights = Float32Array.from({ length: inputs * outputs }, (_, index) => Math.cos(index) / 8);
  weights.set(weightCanary, 0);
  return {
    name: 'canary',
    bytes: denseLayerModel('canary', weights, new Float32Array(outputs)),
    request: {
      inputs: [
        { name: 'X', shape: [1, inputs], datatype: 'FP32', data: [...inputCanaries, 0.25, 0.5, 0.75, 1] },
      ],
    },
  };
}

/** fetch that records request and response bodies as the parent's HTTP edge sees them. */
const recordingFetch: typeof fetch = async (input, init) => {
  if (init?.body instanceof Uint8Array) httpBodies.push(Buffer.from(init.body));
  const response = await fetch(input, init);
  const body = Buffer.from(await response.arrayBuffer());
  httpBodies.push(body);
  return new Response(body, { status: response.status, headers: response.headers });
};

async function direct(model: ExampleModel): Promise<number[]> {
  const session = await ort.InferenceSession.create(model.bytes);
  const input = model.request.inputs[0]!;
  const outputs = await session.run({
    [input.name]: new ort.Tensor('float32', Float32Array.from(input.data), input.shape),
  });
  await session.release();
  return [...((Object.values(outputs)[0] as ort.Tensor).data as Float32Array)];
}

beforeAll(async () => {
  directory = await mkdtemp(path.join(os.tmpdir(), 'ni-e2e-'));
  const tapPath = path.join(directory, 'tap.sock');
  stack = await startLocalStack({
    stateDirectory: directory,
    httpPort: 0,
    parent: { enclave: { address: `unix:${tapPath}` } },
    onEnclaveLine: (line) => enclaveLogs.push(line),
    logger: pino(
      { level: 'info' },
      new Writable({
        write(chunk, _encoding, done) {
          parentLogs.push(String(chunk));
          done();
        },
      }),
    ),
    beforeEnclave: async () => {
      tap = await LinkTap.start(tapPath, path.join(directory, 'enclave.sock'));
    },
  });
  policy = { pcrs: await readFile(stack.files.pcrs, 'utf8'), roots: [stack.pki.rootCertificate] };
  models.push(exampleDenseModel(), canaryModel());
  const ocr = await ocrClassifierModel();
  if (ocr !== undefined) models.push(ocr);
  for (const model of models) {
    const sha384 = createHash('sha384').update(model.bytes).digest('hex');
    digests.set(model.name, sha384);
    const sealer = createSealStream({
      kms: stack.operator,
      keyArn: stack.keyArn,
      model: { name: model.name, sha384 },
    });
    Readable.from([model.bytes]).pipe(sealer);
    const file = path.join(directory, `${model.name}.sealed`);
    await writeFile(file, await buffer(sealer));
    const loaded = await fetch(`${stack.url}/admin/models/${model.name}`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${stack.adminToken}`, 'content-type': 'application/json' },
      body: JSON.stringify({ source: `file://${file}` }),
    });
    expect(loaded.status).toBe(200);
  }
}, 120_000);

afterAll(async () => {
  await stack?.close();
  await tap?.close();
  await rm(directory, { recursive: true, force: true });
});

describe('end to end through the local stack', () => {
  it('attests, then infers on every model with outputs equal to onnxruntime-node and verified receipts', async () => {
    const client = createClient({ endpoint: stack.url, policy, fetch: recordingFetch });
    const attestation = await client.attest();
    expect(attestation.models.map((model) => model.name).sort()).toEqual(
      models.map((model) => model.name).sort(),
    );
    // RFC 9540 discovery serves the same key config the attestation binds.
    const keys = await fetch(`${stack.url}/.well-known/ohttp-gateway`);
    expect(keys.headers.get('content-type')).toBe('application/ohttp-keys');
    const [served] = decodeKeyConfigList(new Uint8Array(await keys.arrayBuffer()));
    expect(Buffer.from(served!).equals(Buffer.from(attestation.keyConfigBytes))).toBe(true);
    for (const model of models) {
      const result = await client.infer(model.name, model.request);
      const expected = await direct(model);
      const got = result.response.outputs[0]!.data as number[];
      expect(got).toHaveLength(expected.length);
      got.forEach((value, index) => expect(value).toBeCloseTo(expected[index]!, 5));
      expect(result.receipt.model).toBe(model.name);
      expect(result.receipt.sha384).toBe(digests.get(model.name));
      // The receipt stands alone: it verifies with the attested key and nothing else.
      expect(verifyReceipt(result.receiptEncoded, attestation.receiptKey).sha384).toBe(
        digests.get(model.name),
      );
      // ...and not with another key, nor for another model.
      expect(() => verifyReceipt(result.receiptEncoded, new Uint8Array(randomBytes(32)))).toThrow();
      expect(() => verifyReceipt(result.receiptEncoded, attestation.receiptKey, { model: 'other' })).toThrow(
        /another model/,
      );
    }
    const metadata = await client.metadata('canary');
    expect(metadata.inputs[0]).toMatchObject({ name: 'X', datatype: 'FP32' });
    expect(metadata.sha384).toBe(digests.get('canary'));
    // Not in the attested list, even after re-attesting: the SDK refuses before sending the inputs.
    expect(
      await codeOfAsync(() =>
        client.infer('no-such-model', [{ name: 'X', shape: [1], datatype: 'FP32', data: [1] }]),
      ),
    ).toBe('ERR_CLIENT_MODEL_NOT_ATTESTED');
  });

  it('the relay learns nothing: canaries never appear in HTTP bodies, link frames or logs', async () => {
    const client = createClient({ endpoint: stack.url, policy, fetch: recordingFetch });
    const canary = models.find((model) => model.name === 'canary')!;
    const result = await client.infer('canary', canary.request);
    const outputCanaries = (result.response.outputs[0]!.data as number[]).map((value) =>
      JSON.stringify(value),
    );

    const needles = [
      [
        'model weights (raw float32)',
        Buffer.from(weightCanary.buffer, weightCanary.byteOffset, weightCanary.byteLength),
      ],
      ...inputCanaries.map(
        (value, index) => [`input ${index} (JSON text)`, Buffer.from(JSON.stringify(value))] as const,
      ),
      ...outputCanaries.map((text, index) => [`output ${index} (JSON text)`, Buffer.from(text)] as const),
    ] as [string, Buffer][];
    const traffic = Buffer.concat(httpBodies);
    const logs = Buffer.from(parentLogs.join('') + enclaveLogs.join('\n'));
    expect(httpBodies.length).toBeGreaterThan(4);
    expect(tap.chunks.length).toBeGreaterThan(10);
    for (const [name, needle] of needles) {
      expect({ name, inHttp: traffic.includes(needle) }).toEqual({ name, inHttp: false });
      expect({ name, inLink: tap.contains(needle) }).toEqual({ name, inLink: false });
      expect({ name, inLogs: logs.includes(needle) }).toEqual({ name, inLogs: false });
    }

    // The same search finds them where plaintext legitimately is — so it can fail.
    const plainRequest = Buffer.from(JSON.stringify(canary.request));
    const plainResponse = Buffer.from(JSON.stringify(result.response));
    expect(Buffer.from(canary.bytes).includes(needles[0]![1])).toBe(true);
    for (const [, needle] of needles.slice(1, 1 + inputCanaries.length))
      expect(plainRequest.includes(needle)).toBe(true);
    for (const [, needle] of needles.slice(1 + inputCanaries.length))
      expect(plainResponse.includes(needle)).toBe(true);
  });

  it('binary bodies too: the raw float bytes of canary inputs and outputs never reach HTTP, the link or logs', async () => {
    const client = createClient({ endpoint: stack.url, policy, fetch: recordingFetch });
    const canary = models.find((model) => model.name === 'canary')!;
    const data = Float32Array.from(canary.request.inputs[0]!.data as number[]);
    const inputs = [{ name: 'X', shape: [1, 8], datatype: 'FP32' as const, data }];
    const result = await client.infer('canary', inputs);
    // Typed array in, typed array out: the outputs travelled in the binary section.
    const output = result.response.outputs[0]!.data as Float32Array;
    expect(output).toBeInstanceOf(Float32Array);
    expect([...output]).toEqual(await direct(canary));

    const raw = (array: Float32Array) => Buffer.from(array.buffer, array.byteOffset, array.byteLength);
    const needles: [string, Buffer][] = [
      // The four random-tailed input values, and the outputs they produce, as raw little-endian floats.
      ['inputs (raw float32)', raw(data.subarray(0, 4))],
      ['outputs (raw float32)', raw(output)],
      ...[...output].map(
        (_, index) => [`output ${index}`, raw(output.subarray(index, index + 1))] as [string, Buffer],
      ),
    ];
    const traffic = Buffer.concat(httpBodies);
    const logs = Buffer.from(parentLogs.join('') + enclaveLogs.join('\n'));
    for (const [name, needle] of needles) {
      expect({ name, inHttp: traffic.includes(needle) }).toEqual({ name, inHttp: false });
      expect({ name, inLink: tap.contains(needle) }).toEqual({ name, inLink: false });
      expect({ name, inLogs: logs.includes(needle) }).toEqual({ name, inLogs: false });
    }
    // The same search finds them in the plaintext binary body the client sealed, so it can fail.
    const plain = Buffer.from(encodeInferenceRequest({ inputs }).content);
    expect(plain.includes(needles[0]![1])).toBe(true);
  });

  it('fails closed: wrong PCR, replayed attestation, unbound key config or model list, tampered response', async () => {
    const wrongPcr = createClient({
      endpoint: stack.url,
      policy: { ...policy, pcrs: { 0: Buffer.alloc(48, 7).toString('hex') } },
    });
    expect(await codeOfAsync(() => wrongPcr.attest())).toBe('ERR_ATTESTATION_PCR_MISMATCH');
    expect(await codeOfAsync(() => wrongPcr.infer('example', models[0]!.request))).toBe(
      'ERR_ATTESTATION_PCR_MISMATCH',
    );

    const untrustedRoot = createClient({ endpoint: stack.url, policy: { pcrs: policy.pcrs } });
    expect(await codeOfAsync(() => untrustedRoot.attest())).toBe('ERR_ATTESTATION_ROOT_UNTRUSTED');

    let recorded: string | undefined;
    const replaying: typeof fetch = async (input, init) => {
      const url = String(input);
      if (url.includes('/v1/attestation')) {
        if (recorded !== undefined)
          return new Response(recorded, { status: 200, headers: { 'content-type': 'application/json' } });
        const response = await fetch(input, init);
        recorded = await response.text();
        return new Response(recorded, { status: 200 });
      }
      return fetch(input, init);
    };
    const replayed = createClient({ endpoint: stack.url, policy, fetch: replaying });
    await replayed.attest();
    expect(await codeOfAsync(() => replayed.attest())).toBe('ERR_ATTESTATION_NONCE_MISMATCH');

    const swapping =
      (field: 'keyConfig' | 'models'): typeof fetch =>
      async (input, init) => {
        const response = await fetch(input, init);
        if (!String(input).includes('/v1/attestation')) return response;
        const reply = (await response.json()) as Record<string, unknown>;
        if (field === 'keyConfig') {
          // A valid key config for a key the attacker holds, not the one the document binds.
          reply.keyConfig = Buffer.from(
            encodeKeyConfig({
              keyId: 1,
              kemId: HPKE_KEM.DHKEM_X25519_HKDF_SHA256,
              publicKey: new Uint8Array(randomBytes(32)),
              symmetricAlgorithms: [{ kdfId: 1, aeadId: 2 }],
            }),
          ).toString('base64');
        } else {
          reply.models = [{ name: 'example', sha384: '0'.repeat(96) }];
        }
        return new Response(JSON.stringify(reply), { status: 200 });
      };
    for (const field of ['keyConfig', 'models'] as const) {
      const client = createClient({ endpoint: stack.url, policy, fetch: swapping(field) });
      expect(await codeOfAsync(() => client.infer('example', models[0]!.request))).toBe(
        'ERR_CLIENT_BINDING_MISMATCH',
      );
    }

    const tampering: typeof fetch = async (input, init) => {
      const response = await fetch(input, init);
      if (!String(input).endsWith('/.well-known/ohttp-gateway') || init?.method !== 'POST') return response;
      const body = Buffer.from(await response.arrayBuffer());
      body[body.byteLength - 20]! ^= 0x01;
      return new Response(body, { status: response.status, headers: response.headers });
    };
    const tampered = createClient({ endpoint: stack.url, policy, fetch: tampering });
    expect(await codeOfAsync(() => tampered.infer('example', models[0]!.request))).toBe('ERR_DECRYPT_FAILED');

    // The unmodified client still works: every refusal above came from the check, not the stack.
    const honest = createClient({ endpoint: stack.url, policy });
    expect(await codeOfAsync(() => honest.infer('example', models[0]!.request))).toBe('accepted');
  });

  it('a request sealed to another key is refused by the gateway; the SDK re-attests, does not resend, and the next call succeeds', async () => {
    const client = createClient({ endpoint: stack.url, policy });
    await client.attest();
    await stack.enclave.kill('SIGKILL');
    await stack.enclave.start();
    await stack.parent.link.ready();
    for (let attempt = 0; attempt < 100 && stack.parent.models.reloading; attempt++) {
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    // The restarted enclave has a new OHTTP key; the cached key config is refused (the ohttp-key
    // problem) and the SDK verifies a fresh attestation, but does not resend an inference: from
    // outside, a restart is indistinguishable from a parent that let it run (docs/protocols.md).
    const before = client.attestation!.keyConfigBytes;
    expect(await codeOfAsync(() => client.infer('example', models[0]!.request))).toBe(
      'ERR_CLIENT_KEY_CHANGED',
    );
    const result = await client.infer('example', models[0]!.request);
    expect(Buffer.from(client.attestation!.keyConfigBytes).equals(Buffer.from(before))).toBe(false);
    expect(result.receipt.sha384).toBe(digests.get('example'));
  });
});
