/**
 * The parent for real: parent + enclave child process + KMS simulator (through the parent's own
 * forwarder) + Ceph RADOS Gateway as S3. Models load from pinned S3 versions through the admin API;
 * the enclave is killed and paused mid-load and mid-request; S3 goes away. The parent answers with
 * the right statuses, reconnects, reloads, and serves again without a restart of its own.
 */
import { createHash, randomBytes } from 'node:crypto';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import os from 'node:os';
import path from 'node:path';
import { Readable, Writable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { S3 } from '@aws-sdk/client-s3';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSealStream } from '../../shared/sealing/index.ts';
import { startLocalStack } from '../../sim/local-stack.ts';
import type { LocalStack } from '../../sim/local-stack.ts';
import { denseLayerModel } from '../../sim/onnx-builder.ts';
import { PROJECT_ROOT } from '../helpers/fixtures.ts';
import { RADOS_INSTALL_COMMAND, radosGatewayInstalled, startRadosGateway } from '../helpers/rados-gateway.ts';
import type { RadosGateway } from '../helpers/rados-gateway.ts';

const run = promisify(execFile);
const installed = radosGatewayInstalled();
if (!installed && process.env.CI === 'true') {
  throw new Error(
    `CI=true but the RADOS Gateway is not installed; .ci/run installs it (${RADOS_INSTALL_COMMAND})`,
  );
}
if (!installed)
  console.warn(
    `skipping the parent stack tests: install the RADOS Gateway with \`${RADOS_INSTALL_COMMAND}\``,
  );

let directory = '';
let gateway: RadosGateway;
let stack: LocalStack;
let s3: S3;
const parentLogs: string[] = [];
const versions: Record<string, string> = {};
const digests: Record<string, string> = {};

function dense(seed: number, inputs: number, outputs: number): Uint8Array {
  const weights = Float32Array.from({ length: inputs * outputs }, (_, index) => Math.sin(index * seed) * 0.1);
  return denseLayerModel('dense', weights, new Float32Array(outputs).fill(seed / 10));
}

async function sealAndPut(key: string, name: string, model: Uint8Array): Promise<string> {
  const sha384 = createHash('sha384').update(model).digest('hex');
  const seal = createSealStream({ kms: stack.operator, keyArn: stack.keyArn, model: { name, sha384 } });
  Readable.from([model]).pipe(seal);
  const sealed = await buffer(seal);
  const put = await s3.putObject({ Bucket: 'models', Key: key, Body: sealed });
  digests[put.VersionId!] = sha384;
  return put.VersionId!;
}

async function call(route: string, init: RequestInit = {}) {
  const response = await fetch(stack.url + route, init);
  const text = await response.text();
  const json = (() => {
    try {
      return JSON.parse(text) as Record<string, unknown> & { error?: { code: string; message: string } };
    } catch {
      return {};
    }
  })();
  return { status: response.status, code: json.error?.code, json, text, headers: response.headers };
}

const admin = () => ({ authorization: `Bearer ${stack.adminToken}`, 'content-type': 'application/json' });
const load = (name: string, source: string) =>
  call(`/admin/models/${name}`, { method: 'PUT', headers: admin(), body: JSON.stringify({ source }) });

async function waitUntil(condition: () => Promise<boolean>, what: string): Promise<void> {
  for (let attempt = 0; attempt < 300; attempt++) {
    if (await condition()) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`gave up waiting for ${what}`);
}

describe.skipIf(!installed)('parent + enclave + KMS simulator + RADOS Gateway', () => {
  beforeAll(async () => {
    directory = await mkdtemp(path.join(os.tmpdir(), 'ni-ps-'));
    gateway = await startRadosGateway();
    s3 = new S3({
      region: 'us-east-1',
      endpoint: gateway.endpoint,
      forcePathStyle: true,
      credentials: { accessKeyId: gateway.accessKeyId, secretAccessKey: gateway.secretAccessKey },
    });
    await s3.createBucket({ Bucket: 'models' });
    await s3.putBucketVersioning({ Bucket: 'models', VersioningConfiguration: { Status: 'Enabled' } });
    stack = await startLocalStack({
      stateDirectory: directory,
      httpPort: 0,
      s3: gateway,
      parent: { enclave: { requestTimeoutMs: 3000 } },
      logger: pino(
        { level: 'info' },
        new Writable({
          write(chunk, _encoding, done) {
            parentLogs.push(String(chunk));
            done();
          },
        }),
      ),
    });
    versions.first = await sealAndPut('dense.sealed', 'dense', dense(1, 8, 4));
    versions.second = await sealAndPut('dense.sealed', 'dense', dense(2, 8, 4));
    // ~16 MB of weights: long enough to kill the enclave while it streams in.
    versions.large = await sealAndPut('large.sealed', 'large', dense(3, 2048, 2048));
  }, 420_000);

  afterAll(async () => {
    s3?.destroy();
    await stack?.close();
    await gateway?.stop();
    await rm(directory, { recursive: true, force: true });
  });

  it('is ready with the link up and no models; unknown models are 404', async () => {
    expect(await call('/v2/health/ready')).toMatchObject({ status: 200 });
    expect(await call('/v2/models/dense/ready')).toMatchObject({ status: 404, code: 'ERR_HTTP_NOT_FOUND' });
  });

  it('loads the pinned S3 version, not the other one', async () => {
    const loaded = await load('dense', `s3://models/dense.sealed?versionId=${versions.first}`);
    expect(loaded.status).toBe(200);
    const model = loaded.json.model as { description: { sha384: string }; versionId: string; state: string };
    expect(model.state).toBe('ready');
    expect(model.versionId).toBe(versions.first);
    expect(model.description.sha384).toBe(digests[versions.first!]);
    expect(model.description.sha384).not.toBe(digests[versions.second!]);
    expect(await call('/v2/models/dense/ready')).toMatchObject({
      status: 200,
      json: { name: 'dense', ready: true },
    });
    // The attestation binds the loaded model list, served beside it.
    const attestation = await call(`/v1/attestation?nonce=${randomBytes(32).toString('hex')}`);
    expect(attestation.json.models).toEqual([{ name: 'dense', sha384: digests[versions.first!] }]);
  });

  it('`nitro-infer seal --out s3://…` uploads a version that loads by the printed source', async () => {
    // The operator's keys sign both KMS (simulator) and S3 (gateway) requests, as one IAM identity would.
    await gateway.createUser('operator', stack.kms.info.accessKeyId, stack.kms.info.secretAccessKey);
    await s3.putBucketPolicy({
      Bucket: 'models',
      Policy: JSON.stringify({
        Version: '2012-10-17',
        Statement: [
          {
            Effect: 'Allow',
            Principal: { AWS: ['arn:aws:iam:::user/operator'] },
            Action: ['s3:PutObject'],
            Resource: ['arn:aws:s3:::models/*'],
          },
          {
            Effect: 'Allow',
            Principal: { AWS: ['arn:aws:iam:::user/nitro-infer'] },
            Action: ['s3:GetObject', 's3:GetObjectVersion'],
            Resource: ['arn:aws:s3:::models/*'],
          },
        ],
      }),
    });
    const model = path.join(directory, 'cli-model.onnx');
    const bytes = dense(4, 8, 4);
    await writeFile(model, bytes);
    const { stdout } = await run(
      process.execPath,
      [
        path.join(PROJECT_ROOT, 'bin', 'nitro-infer.js'),
        'seal',
        model,
        '--name',
        'cli-model',
        '--key',
        stack.keyArn,
        '--out',
        's3://models/cli-model.sealed',
        '--kms-endpoint',
        stack.kms.info.endpoint,
        '--kms-ca',
        stack.kms.info.caCertPath,
        '--s3-endpoint',
        gateway.endpoint,
        '--json',
      ],
      {
        env: {
          ...process.env,
          AWS_REGION: stack.region,
          AWS_ACCESS_KEY_ID: stack.kms.info.accessKeyId,
          AWS_SECRET_ACCESS_KEY: stack.kms.info.secretAccessKey,
        },
      },
    );
    const sealed = JSON.parse(stdout) as { source: string; versionId: string; sha384: string };
    expect(sealed.source).toBe(
      `s3://models/cli-model.sealed?versionId=${encodeURIComponent(sealed.versionId)}`,
    );
    expect(sealed.sha384).toBe(createHash('sha384').update(bytes).digest('hex'));
    const loaded = await load('cli-model', sealed.source);
    expect(loaded.status).toBe(200);
    expect((loaded.json.model as { description: { sha384: string } }).description.sha384).toBe(sealed.sha384);
    expect(
      (
        await call('/admin/models/cli-model', {
          method: 'DELETE',
          headers: { authorization: admin().authorization },
        })
      ).status,
    ).toBe(200);
  });

  it('a missing object or version is a clear 404, and nothing changes', async () => {
    const missing = await load('other', 's3://models/none.sealed?versionId=abc');
    expect(missing).toMatchObject({ status: 404, code: 'ERR_ARTIFACT_NOT_FOUND' });
    expect(missing.json.error?.message).toContain('s3://models/none.sealed');
    expect(await load('dense', 's3://models/dense.sealed?versionId=nosuchversion')).toMatchObject({
      status: 404,
      code: 'ERR_ARTIFACT_NOT_FOUND',
    });
    const list = await call('/admin/models', { headers: admin() });
    expect(
      (list.json.models as { name: string; versionId: string }[]).map((entry) => [
        entry.name,
        entry.versionId,
      ]),
    ).toEqual([['dense', versions.first]]);
  });

  it('enclave killed mid-load: 503, then it reconnects and reloads what it had, not the failed load', async () => {
    const pending = load('large', `s3://models/large.sealed?versionId=${versions.large}`);
    await waitUntil(async () => stack.parent.link.inFlight > 0, 'the upload to start');
    await stack.enclave.kill('SIGKILL');
    const failed = await pending;
    expect(failed).toMatchObject({ status: 503, code: 'ERR_LINK_UNAVAILABLE' });
    expect(failed.headers.get('retry-after')).toBe('1');
    expect(await call('/v2/health/ready')).toMatchObject({ status: 503 });
    // While the enclave is gone nothing reports the model as served: not the model's readiness,
    // not the admin list, not the metrics (they once said "ready" beside a link that was down).
    expect(await call('/v2/models/dense/ready')).toMatchObject({ status: 503 });
    const listed = await call('/admin/models', { headers: { authorization: admin().authorization } });
    expect(listed.json.models).toContainEqual(
      expect.objectContaining({
        name: 'dense',
        state: 'unavailable',
        link: expect.not.stringMatching(/^ready$/),
      }),
    );
    const down = (await call('/metrics')).text;
    expect(down).toContain('nitro_infer_enclave_link_up 0');
    expect(down).toContain('nitro_infer_models{state="ready"} 0');
    expect(down).toContain('nitro_infer_models{state="unavailable"} 1');

    await stack.enclave.start();
    await waitUntil(
      async () => (await call('/v2/models/dense/ready')).status === 200,
      'dense to be reloaded',
    );
    expect(await call('/v2/health/ready')).toMatchObject({ status: 200 });
    const relisted = await call('/admin/models', { headers: { authorization: admin().authorization } });
    expect(relisted.json.models).toContainEqual(
      expect.objectContaining({ name: 'dense', state: 'ready', link: 'ready' }),
    );
    expect(await call('/v2/models/large/ready')).toMatchObject({ status: 404 });
    const attestation = await call(`/v1/attestation?nonce=${randomBytes(16).toString('hex')}`);
    expect(attestation.json.models).toEqual([{ name: 'dense', sha384: digests[versions.first!] }]);
  });

  it('enclave stops answering: 504; killed mid-request: 503; then serves again', async () => {
    stack.enclave.pause(true);
    expect(await call(`/v1/attestation?nonce=${randomBytes(16).toString('hex')}`)).toMatchObject({
      status: 504,
      code: 'ERR_LINK_TIMEOUT',
    });
    const pending = call(`/v1/attestation?nonce=${randomBytes(16).toString('hex')}`);
    await waitUntil(async () => stack.parent.link.inFlight > 0, 'the request to reach the link');
    await stack.enclave.kill('SIGKILL');
    expect(await pending).toMatchObject({ status: 503, code: 'ERR_LINK_UNAVAILABLE' });
    await stack.enclave.start();
    await waitUntil(
      async () => (await call('/v2/models/dense/ready')).status === 200,
      'dense to be reloaded',
    );
    expect(await call(`/v1/attestation?nonce=${randomBytes(16).toString('hex')}`)).toMatchObject({
      status: 200,
    });
  });

  it('/metrics parses as Prometheus text and reports the link and models', async () => {
    const { text } = await call('/metrics');
    for (const line of text.split('\n').filter((entry) => entry.length > 0 && !entry.startsWith('#'))) {
      expect(line).toMatch(
        /^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="[^"]*",?)*\})? (-?[0-9.e+-]+|NaN|[+-]Inf)$/,
      );
    }
    expect(text).toContain('nitro_infer_enclave_link_up 1');
    expect(text).toContain('nitro_infer_models{state="ready"} 1');
    expect(Number(/nitro_infer_enclave_link_reconnects_total (\d+)/.exec(text)?.[1])).toBeGreaterThanOrEqual(
      2,
    );
  });

  it('an S3 outage is a clear 502 and nothing is half-loaded', async () => {
    await gateway.stopGateway();
    const failed = await load('second', `s3://models/dense.sealed?versionId=${versions.second}`);
    expect(failed).toMatchObject({ status: 502, code: 'ERR_ARTIFACT_SOURCE_UNAVAILABLE' });
    const list = await call('/admin/models', { headers: admin() });
    expect((list.json.models as { name: string }[]).map((entry) => entry.name)).toEqual(['dense']);
    expect(await call('/v2/models/dense/ready')).toMatchObject({ status: 200 });
  });

  it('parent logs carry no credentials or tokens', () => {
    const joined = parentLogs.join('');
    expect(joined).toContain('model.reloaded');
    expect(joined).not.toContain(stack.adminToken);
    expect(joined).not.toContain(stack.kms.info.secretAccessKey);
    expect(joined).not.toContain(gateway.secretAccessKey);
  });
});
