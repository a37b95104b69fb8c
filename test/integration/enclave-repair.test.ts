/**
 * Repair loads after a worker died (the enclave service in-process with the KMS simulator, as in
 * enclave-service.test.ts, and no parent, so the lost state lasts until the test acts): the enclave
 * reports the lost models through `status` and `models.watch`; a parent that answers with another
 * artifact under the same name is refused (the repair path skips the session reservation, so it
 * must rebuild exactly what is serving); the same artifact brings the sessions back in every worker.
 */
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import type { KMS } from '@aws-sdk/client-kms';
import ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LinkServer } from '../../enclave/server/link-server.ts';
import { startEnclaveService } from '../../enclave/service.ts';
import type { EnclaveService } from '../../enclave/service.ts';
import { createSealStream } from '../../shared/sealing/index.ts';
import { createSimulatedEnclaveIdentity } from '../../sim/index.ts';
import { startLocalKms } from '../../sim/local-kms.ts';
import type { LocalKms } from '../../sim/local-kms.ts';
import { denseLayerModel } from '../../sim/onnx-builder.ts';
import { TestLinkClient } from '../helpers/link-client.ts';

const ACCOUNT = '111122223333';
const WORKERS = 2;
let directory = '';
let localKms: LocalKms;
let operator: KMS;
let service: EnclaveService;
let server: net.Server;
let linkServer: LinkServer;
let socketPath = '';
let keyArn = '';
const logLines: string[] = [];

const model = (seed: number) =>
  denseLayerModel(
    'dense',
    Float32Array.from({ length: 8 * 5 }, (_, index) => Math.cos(index * seed) * 0.3),
    new Float32Array(5),
  );
const serving = model(1);
const input = Array.from({ length: 8 }, (_, index) => index - 3);

async function seal(name: string, bytes: Uint8Array): Promise<Uint8Array> {
  const sha384 = createHash('sha384').update(bytes).digest('hex');
  const stream = createSealStream({ kms: operator, keyArn, model: { name, sha384 } });
  Readable.from([bytes]).pipe(stream);
  return new Uint8Array(await buffer(stream));
}

async function status(link: TestLinkClient) {
  const fields = (await link.request('status')).fields;
  const dense = (fields.get('models') as Map<string, unknown>[]).find(
    (entry) => entry.get('name') === 'dense',
  );
  return {
    lost: fields.get('lost') as string[],
    sessions: dense?.get('sessions'),
    sha384: dense?.get('sha384'),
    workers: fields.get('workers') as Map<string, number>,
  };
}

async function infer(link: TestLinkClient, name: string) {
  const response = await link.request('infer', {
    model: name,
    body: new TextEncoder().encode(
      JSON.stringify({ inputs: [{ name: 'X', datatype: 'FP32', shape: [1, 8], data: input }] }),
    ),
  });
  if (response.type !== 'ok') return { code: String(response.fields.get('code')) };
  return JSON.parse(new TextDecoder().decode(response.fields.get('body') as Uint8Array)) as {
    outputs: { data: number[] }[];
  };
}

beforeAll(async () => {
  // The test build's hook: a worker that runs `poison` exits. Workers copy the environment at start.
  process.env.NITRO_INFER_TEST_WORKER_EXIT_ON_MODEL = 'poison';
  directory = await mkdtemp(path.join(os.tmpdir(), 'nitro-infer-repair-'));
  const enclave = await createSimulatedEnclaveIdentity();
  localKms = await startLocalKms(directory, [enclave.pki.rootCertificate]);
  operator = localKms.operator;
  const pcr0 = Buffer.from(enclave.measurements.pcr0).toString('hex');
  keyArn = (
    await operator.createKey({
      Policy: JSON.stringify({
        Version: '2012-10-17',
        Statement: [
          {
            Effect: 'Allow',
            Principal: { AWS: `arn:aws:iam::${ACCOUNT}:root` },
            Action: ['kms:GenerateDataKey', 'kms:DescribeKey'],
            Resource: '*',
          },
          {
            Effect: 'Allow',
            Principal: { AWS: `arn:aws:iam::${ACCOUNT}:root` },
            Action: 'kms:Decrypt',
            Resource: '*',
            Condition: { StringEqualsIgnoreCase: { 'kms:RecipientAttestation:ImageSha384': pcr0 } },
          },
        ],
      }),
    })
  ).KeyMetadata!.Arn!;
  const log = (level: string, event: string, details?: object) =>
    logLines.push(JSON.stringify({ level, event, ...details }));
  service = await startEnclaveService({
    nsm: enclave.nsm,
    attestationRoots: [enclave.pki.rootCertificate],
    kms: {
      region: localKms.simulator.info.region,
      openTransport: () => net.connect(localKms.socketPath),
      extraCaCertificates: [localKms.simulator.caCertificatePem],
    },
    memoryBudgetBytes: 64 * 1024 * 1024,
    inferenceWorkers: WORKERS,
    allowPlaintextInference: true,
    log,
  });
  linkServer = new LinkServer(service.handlers, log);
  socketPath = path.join(directory, 'enclave.sock');
  server = net.createServer((socket) => linkServer.accept(socket));
  await new Promise<void>((resolve) => server.listen(socketPath, resolve));
  const link = await TestLinkClient.connect(socketPath);
  await link.request('credentials', {
    accessKeyId: localKms.simulator.info.accessKeyId,
    secretAccessKey: localKms.simulator.info.secretAccessKey,
  });
  link.close();
}, 60_000);

afterAll(async () => {
  delete process.env.NITRO_INFER_TEST_WORKER_EXIT_ON_MODEL;
  linkServer?.close();
  await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
  await service?.close();
  await localKms?.close();
  await rm(directory, { recursive: true, force: true });
});

describe('models that lost sessions in a dead worker', () => {
  it('are reported, refused from another artifact, and restored from the serving one', async () => {
    const link = await TestLinkClient.connect(socketPath);
    const sealed = await seal('dense', serving);
    expect((await link.upload('dense', sealed)).type).toBe('ok');
    expect((await link.upload('poison', await seal('poison', serving))).type).toBe('ok');
    // Nothing lost: a watch with no wait answers at once, empty; a bad wait is a typed refusal.
    expect((await link.request('models.watch', { waitMs: 0 })).fields.get('lost')).toEqual([]);
    expect(await link.code('models.watch', { waitMs: -1 })).toBe('ERR_LINK_REQUEST_INVALID');
    expect(await link.code('models.watch', { waitMs: 3_600_000 })).toBe('ERR_LINK_REQUEST_INVALID');

    // A watch held open answers as soon as the replaced worker lacks the models.
    const watch = link.request('models.watch', { waitMs: 30_000 });
    expect(await infer(link, 'poison')).toEqual({ code: 'ERR_INFERENCE_FAILED' });
    expect((await watch).fields.get('lost')).toEqual(['dense', 'poison']);
    const lost = await status(link);
    expect(lost.lost).toEqual(['dense', 'poison']);
    expect(lost.sessions).toBe(WORKERS - 1);
    expect(lost.workers.get('restarts')).toBe(1);
    // The surviving worker serves meanwhile.
    const direct = await (
      await ort.InferenceSession.create(serving)
    ).run({ X: new ort.Tensor('float32', Float32Array.from(input), [1, 8]) });
    const expected = Array.from(direct.Y!.data as Float32Array);
    expect(((await infer(link, 'dense')) as { outputs: { data: number[] }[] }).outputs[0]!.data).toEqual(
      expected,
    );

    // Another model under the same name cannot ride the repair path in.
    const other = await link.upload('dense', await seal('dense', model(2)));
    expect(other.type).toBe('error');
    expect(other.fields.get('code')).toBe('ERR_MODEL_LOAD_FAILED');
    expect((await status(link)).sha384).toBe(lost.sha384);

    // The artifact that is serving restores the sessions in the replaced worker.
    expect((await link.upload('dense', sealed)).type).toBe('ok');
    const restored = await status(link);
    expect(restored.lost).toEqual(['poison']);
    expect(restored.sessions).toBe(WORKERS);
    expect(restored.sha384).toBe(lost.sha384);
    for (let index = 0; index < 4; index++)
      expect(((await infer(link, 'dense')) as { outputs: { data: number[] }[] }).outputs[0]!.data).toEqual(
        expected,
      );

    // Control: the refused artifact is a good one — with no sessions lost it is an ordinary
    // replacement (sessions reserved anew) and loads.
    const replaced = await link.upload('dense', await seal('dense', model(2)));
    expect(replaced.type).toBe('ok');
    expect((await status(link)).sha384).not.toBe(lost.sha384);
    link.close();
  }, 60_000);
});
