/**
 * Open Inference Protocol conformance of the gateway inside the encryption (real HPKE, real
 * Binary HTTP): server metadata, health, model metadata and readiness on unversioned and versioned
 * paths (a version is the model's SHA-384), `id` and `parameters` echoed, errors as
 * `{"error": "<message>", "code": "ERR_…"}`.
 */
import { describe, expect, it } from 'vitest';
import { ClusterKeyring } from '../../../../enclave/cluster/cluster-keyring.ts';
import { InferenceGateway } from '../../../../enclave/gateway/inference-gateway.ts';
import { ReplayWindow } from '../../../../enclave/gateway/replay-window.ts';
import type { InferencePool } from '../../../../enclave/inference/pool.ts';
import type { ModelManager } from '../../../../enclave/models/model-manager.ts';
import { SERVER_EXTENSIONS, SERVER_NAME, SERVER_VERSION } from '../../../../shared/inference/v2.ts';
import type { V2InferenceRequest } from '../../../../shared/inference/v2.ts';
import { decodeBhttpResponse, encodeBhttpRequest } from '../../../../shared/ohttp/bhttp.ts';
import { encapsulateRequest } from '../../../../shared/ohttp/encapsulation.ts';
import { decodeKeyConfig } from '../../../../shared/ohttp/key-config.ts';
import { RECEIPT_HEADER } from '../../../../shared/receipts.ts';
import packageJson from '../../../../package.json' with { type: 'json' };

const NOW = Date.UTC(2026, 11, 2, 1, 0, 0);
const DIGEST = 'ab'.repeat(48);
const METADATA = {
  name: 'dense',
  platform: 'onnx_onnxv1',
  inputs: [{ name: 'X', datatype: 'FP32', shape: [-1, 2] }],
  outputs: [{ name: 'Y', datatype: 'FP32', shape: [-1, 1] }],
};

async function setup() {
  const { ohttpKeys } = await ClusterKeyring.generate(() => NOW);
  const seen: V2InferenceRequest[] = [];
  const pool = {
    infer: async (name: string, request: V2InferenceRequest) => {
      seen.push(request);
      return {
        model_name: name,
        ...(request.id === undefined ? {} : { id: request.id }),
        outputs: [{ name: 'Y', datatype: 'FP32', shape: [1, 1], data: [3] }],
      };
    },
  } as unknown as InferencePool;
  const models = {
    list: () => [{ identity: { name: 'dense', sha384: DIGEST }, metadata: METADATA, sizeBytes: 1 }],
  } as unknown as ModelManager;
  const gateway = new InferenceGateway({
    keys: ohttpKeys,
    pool,
    models,
    replay: new ReplayWindow({ windowMs: 60_000, capacity: 1024, clock: () => NOW }),
    clock: () => NOW,
  });
  const config = decodeKeyConfig(ohttpKeys.keyConfig);
  const call = async (method: string, path: string, body?: unknown) => {
    const content = body === undefined ? new Uint8Array(0) : new TextEncoder().encode(JSON.stringify(body));
    const headers: [string, string][] = [['date', new Date(NOW).toUTCString()]];
    if (body !== undefined) headers.push(['content-type', 'application/json']);
    const message = encodeBhttpRequest({
      method,
      scheme: 'https',
      authority: '',
      path,
      headers,
      content,
      trailers: [],
    });
    const { encapsulated, opener } = await encapsulateRequest(config, message);
    const response = decodeBhttpResponse(opener.open(await gateway.handle(encapsulated)));
    return {
      status: response.status,
      json: JSON.parse(new TextDecoder().decode(response.content)) as Record<string, unknown>,
      headers: response.headers,
    };
  };
  return { call, seen };
}

const REQUEST = { inputs: [{ name: 'X', datatype: 'FP32', shape: [1, 2], data: [1, 2] }] };

describe('the gateway speaks the Open Inference Protocol', () => {
  it('serves server metadata at /v2 and /v2/, and live/ready health', async () => {
    const { call } = await setup();
    for (const path of ['/v2', '/v2/']) {
      const reply = await call('GET', path);
      expect(reply.status).toBe(200);
      expect(reply.json).toEqual({
        name: SERVER_NAME,
        version: SERVER_VERSION,
        extensions: [...SERVER_EXTENSIONS],
      });
    }
    expect(SERVER_VERSION).toBe(packageJson.version);
    expect(await call('GET', '/v2/health/live')).toMatchObject({ status: 200, json: { live: true } });
    expect(await call('GET', '/v2/health/ready')).toMatchObject({ status: 200, json: { ready: true } });
  });

  it('serves model metadata and readiness unversioned and at the digest version; other versions are 404', async () => {
    const { call } = await setup();
    for (const base of [
      '/v2/models/dense',
      `/v2/models/dense/versions/${DIGEST}`,
      `/v2/models/dense/versions/${DIGEST.toUpperCase()}`,
    ]) {
      const metadata = await call('GET', base);
      expect(metadata.status).toBe(200);
      expect(metadata.json).toMatchObject({
        name: 'dense',
        platform: 'onnx_onnxv1',
        versions: [DIGEST],
        sha384: DIGEST,
      });
      expect((metadata.json.inputs as { shape: number[] }[])[0]?.shape).toEqual([-1, 2]);
      expect(await call('GET', `${base}/ready`)).toMatchObject({
        status: 200,
        json: { name: 'dense', ready: true },
      });
    }
    for (const path of [
      '/v2/models/dense/versions/1',
      '/v2/models/dense/versions/1/ready',
      '/v2/models/other',
    ]) {
      const reply = await call('GET', path);
      expect(reply.status).toBe(404);
      expect(reply.json.code).toBe('ERR_MODEL_NOT_FOUND');
      expect(typeof reply.json.error).toBe('string');
    }
  });

  it('infers at versioned paths, echoes id and parameters, and names the version that served', async () => {
    const { call, seen } = await setup();
    const body = {
      ...REQUEST,
      id: 'req-42',
      parameters: { trace: 'abc', priority: 2, binary_data_output: false },
    };
    for (const path of ['/v2/models/dense/infer', `/v2/models/dense/versions/${DIGEST}/infer`]) {
      const reply = await call('POST', path, body);
      expect(reply.status).toBe(200);
      expect(reply.json).toMatchObject({
        model_name: 'dense',
        model_version: DIGEST,
        id: 'req-42',
        parameters: { trace: 'abc', priority: 2 },
      });
      expect(reply.json.parameters).not.toHaveProperty('binary_data_output');
      expect(reply.headers.some(([name]) => name === RECEIPT_HEADER)).toBe(true);
    }
    expect(seen).toHaveLength(2);
    const wrong = await call('POST', '/v2/models/dense/versions/2/infer', body);
    expect(wrong).toMatchObject({ status: 404, json: { code: 'ERR_MODEL_NOT_FOUND' } });
    expect(seen).toHaveLength(2);
  });

  it('answers errors as {error: string, code} with the right statuses', async () => {
    const { call } = await setup();
    expect(await call('GET', '/v2/nothing')).toMatchObject({
      status: 404,
      json: { code: 'ERR_HTTP_NOT_FOUND', error: 'no such route' },
    });
    expect(await call('GET', '/v2/models/dense/infer')).toMatchObject({
      status: 405,
      json: { code: 'ERR_HTTP_BAD_REQUEST' },
    });
    expect(await call('POST', '/v2', {})).toMatchObject({ status: 405 });
    const invalid = await call('POST', '/v2/models/dense/infer', { inputs: 'no' });
    expect(invalid).toMatchObject({ status: 400, json: { code: 'ERR_INFERENCE_INPUT_INVALID' } });
    expect(typeof invalid.json.error).toBe('string');
  });
});
