/**
 * The binary tensor data extension through the real gateway (real HPKE, Binary HTTP, replay
 * window, a real inference pool running ONNX Runtime): every datatype round-trips bit-exactly
 * against direct onnxruntime-node, in binary and in JSON, and mixed in one request; every lie in a
 * binary body is an ERR_INFERENCE_INPUT_INVALID 400 inside the encryption, and the enclave serves
 * the next request.
 */
import ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeInferenceResponse, encodeInferenceRequest } from '../../../../client/tensors.ts';
import type { ClientTensor } from '../../../../client/tensors.ts';
import { ClusterKeyring } from '../../../../enclave/cluster/cluster-keyring.ts';
import { InferenceGateway } from '../../../../enclave/gateway/inference-gateway.ts';
import { ReplayWindow } from '../../../../enclave/gateway/replay-window.ts';
import { InferencePool } from '../../../../enclave/inference/pool.ts';
import type { ModelManager } from '../../../../enclave/models/model-manager.ts';
import {
  binaryBodyPieces,
  encodeBytesElements,
  rawBytesOf,
} from '../../../../shared/inference/binary-tensor.ts';
import { V2_TO_ONNX_TYPE } from '../../../../shared/inference/v2.ts';
import type { V2Datatype } from '../../../../shared/inference/v2.ts';
import { decodeBhttpResponse, encodeBhttpRequest } from '../../../../shared/ohttp/bhttp.ts';
import type { BhttpResponse, Field } from '../../../../shared/ohttp/bhttp.ts';
import { encapsulateRequest } from '../../../../shared/ohttp/encapsulation.ts';
import { decodeKeyConfig } from '../../../../shared/ohttp/key-config.ts';
import { RECEIPT_HEADER, verifyReceipt } from '../../../../shared/receipts.ts';
import { ALL_DATATYPES, identityModel } from '../../../helpers/identity-models.ts';

const MODEL = { name: 'identity', sha384: 'cd'.repeat(48) };

/** Values at the edges of each datatype: extremes, NaN payloads, -0, subnormals, non-ASCII text. */
const SAMPLES: Record<V2Datatype, ClientTensor['data']> = {
  BOOL: new Uint8Array([1, 0, 1]),
  UINT8: new Uint8Array([0, 255, 7]),
  INT8: new Int8Array([-128, 127, 0]),
  UINT16: new Uint16Array([0, 65535, 1]),
  INT16: new Int16Array([-32768, 32767, -1]),
  UINT32: new Uint32Array([0, 2 ** 32 - 1, 5]),
  INT32: new Int32Array([-(2 ** 31), 2 ** 31 - 1, 0]),
  UINT64: new BigUint64Array([0n, 2n ** 64n - 1n, 5n]),
  INT64: new BigInt64Array([-(2n ** 63n), 2n ** 63n - 1n, 0n]),
  // 1.0, a NaN with a payload, the smallest subnormal.
  FP16: new Uint16Array([0x3c00, 0x7e01, 0x0001]),
  FP32: new Float32Array(new Uint32Array([0x7fc00001, 0x80000000, 0x00000001]).buffer),
  FP64: new Float64Array([Number.MIN_VALUE, -0, Math.PI]),
  BYTES: ['', 'héllo ✓', 'a\tb'],
};

const tensorOf = (datatype: V2Datatype): ClientTensor => ({
  name: `x_${datatype}`,
  datatype,
  shape: [3],
  data: SAMPLES[datatype],
});

let pool: InferencePool;
let gateway: InferenceGateway;
let keyConfig: ReturnType<typeof decodeKeyConfig>;
let keyConfigBytes: Uint8Array;
let receiptKey: Uint8Array;
const direct: Record<string, ort.Tensor> = {};

beforeAll(async () => {
  const { ohttpKeys } = await ClusterKeyring.generate(Date.now);
  pool = new InferencePool({ size: 1 });
  const metadata = await pool.load(MODEL.name, identityModel());
  const models = {
    list: () => [{ identity: MODEL, metadata, sizeBytes: 1 }],
  } as unknown as ModelManager;
  gateway = new InferenceGateway({
    keys: ohttpKeys,
    pool,
    models,
    replay: new ReplayWindow({ windowMs: 60_000, capacity: 4096, clock: Date.now }),
  });
  keyConfigBytes = ohttpKeys.keyConfig;
  keyConfig = decodeKeyConfig(keyConfigBytes);
  receiptKey = ohttpKeys.receipts.publicKeyRaw;
  // The reference: the same model run directly, on the same values.
  const session = await ort.InferenceSession.create(identityModel());
  const feeds = Object.fromEntries(
    ALL_DATATYPES.map((datatype) => [
      `x_${datatype}`,
      new ort.Tensor(V2_TO_ONNX_TYPE[datatype], SAMPLES[datatype] as never, [3]),
    ]),
  );
  Object.assign(direct, await session.run(feeds));
});
afterAll(() => pool.close());

/** Sends one infer request through OHTTP; returns the decrypted inner response. */
async function send(headers: readonly Field[], content: Uint8Array): Promise<BhttpResponse> {
  const message = encodeBhttpRequest({
    method: 'POST',
    scheme: 'https',
    authority: '',
    path: `/v2/models/${MODEL.name}/infer`,
    headers: [['date', new Date().toUTCString()], ...headers],
    content,
    trailers: [],
  });
  const { encapsulated, opener } = await encapsulateRequest(keyConfig, message);
  return decodeBhttpResponse(opener.open(await gateway.handle(encapsulated)));
}

const codeIn = (response: BhttpResponse) =>
  (JSON.parse(new TextDecoder().decode(response.content)) as { code?: string }).code;

/** Bytes of an output as the wire carries them (BYTES length-prefixed), to compare bit for bit. */
function wireBytes(datatype: V2Datatype, data: unknown): Uint8Array {
  if (datatype === 'BYTES') return encodeBytesElements(data as string[]);
  return rawBytesOf(data as ArrayBufferView);
}

/** A binary body built by hand: `header` as JSON, then `blobs`, with the length the header field says. */
function body(header: unknown, blobs: Uint8Array[]): { headers: Field[]; content: Uint8Array } {
  const { pieces, headerLength } = binaryBodyPieces(header, blobs);
  return {
    headers: [
      ['content-type', 'application/octet-stream'],
      ['inference-header-content-length', String(headerLength)],
    ],
    content: new Uint8Array(Buffer.concat(pieces)),
  };
}

describe('binary tensors through the gateway', () => {
  it('every datatype round-trips in binary, bit-equal to direct onnxruntime-node, with a valid receipt', async () => {
    const request = encodeInferenceRequest({ inputs: ALL_DATATYPES.map(tensorOf) });
    expect(request.headers).toContainEqual(['content-type', 'application/octet-stream']);
    const response = await send(request.headers, request.content);
    expect(response.status).toBe(200);
    expect(response.headers.find(([name]) => name === 'inference-header-content-length')).toBeDefined();
    const decoded = decodeInferenceResponse(response.headers, response.content);
    for (const datatype of ALL_DATATYPES) {
      const output = decoded.outputs.find((entry) => entry.name === `y_${datatype}`)!;
      expect(output.datatype).toBe(datatype);
      expect(output.shape).toEqual([3]);
      expect(Buffer.from(wireBytes(datatype, output.data))).toEqual(
        Buffer.from(wireBytes(datatype, direct[`y_${datatype}`]!.data)),
      );
    }
    // The receipt binds the binary bodies exactly as they travelled.
    const encoded = response.headers.find(([name]) => name === RECEIPT_HEADER)![1];
    verifyReceipt(encoded, receiptKey, {
      model: MODEL.name,
      sha384: MODEL.sha384,
      request: request.content,
      response: response.content,
      keyConfig: keyConfigBytes,
    });
  });

  it('JSON still works for every datatype (FP16 as numbers, BYTES as strings), equal to direct runs', async () => {
    // NaN and -0 have no JSON form (JSON.stringify writes null and 0): binary carries them, above.
    const finite: Partial<Record<V2Datatype, ClientTensor['data']>> = {
      FP16: new Uint16Array([0x3c00, 0xfbff, 0x0001]),
      FP32: new Float32Array([1.5, -0.25, 1e-45]),
    };
    const inputs = ALL_DATATYPES.filter((datatype) => datatype !== 'UINT64' && datatype !== 'INT64').map(
      (datatype) => ({ ...tensorOf(datatype), data: finite[datatype] ?? SAMPLES[datatype] }),
    );
    const request = encodeInferenceRequest(
      {
        inputs: [
          ...inputs,
          { name: 'x_UINT64', datatype: 'UINT64', shape: [3], data: [0, 2 ** 53 - 1, 5] },
          { name: 'x_INT64', datatype: 'INT64', shape: [3], data: [-(2 ** 53 - 1), 2 ** 53 - 1, 0] },
        ],
      },
      { binary: false },
    );
    expect(request.headers).toEqual([['content-type', 'application/json']]);
    const response = await send(request.headers, request.content);
    expect(response.status).toBe(200);
    const decoded = decodeInferenceResponse(response.headers, response.content);
    const byName = new Map(decoded.outputs.map((output) => [output.name, output]));
    expect(byName.get('y_FP16')?.data).toEqual([1, -65504, 2 ** -24]);
    expect(byName.get('y_BYTES')?.data).toEqual(SAMPLES.BYTES);
    expect(byName.get('y_BOOL')?.data).toEqual([true, false, true]);
    expect(byName.get('y_INT32')?.data).toEqual(Array.from(SAMPLES.INT32 as Int32Array));
    expect(byName.get('y_UINT64')?.data).toEqual([0, 2 ** 53 - 1, 5]);
    expect(Float32Array.from(byName.get('y_FP32')!.data as number[])).toEqual(finite.FP32);
  });

  it('mixes JSON and binary tensors in one request, and JSON and binary outputs in one response', async () => {
    // Binary: FP32 (NaN payload), BYTES, INT64 and FP16; the rest as JSON.
    const binaryIn: Partial<Record<V2Datatype, Uint8Array>> = {
      FP32: wireBytes('FP32', SAMPLES.FP32),
      BYTES: wireBytes('BYTES', SAMPLES.BYTES),
      INT64: rawBytesOf(new BigInt64Array([1n, -2n, 3n])),
      FP16: rawBytesOf(new Uint16Array([0x3c00, 0xc000, 0x0001])), // 1, -2, 2^-24
    };
    const json: Partial<Record<V2Datatype, unknown[]>> = {
      BOOL: [true, false, true],
      UINT64: [1, 2, 3],
      FP64: [0.5, -0.25, 3],
    };
    const blobs: Uint8Array[] = [];
    const inputs = ALL_DATATYPES.map((datatype) => {
      const blob = binaryIn[datatype];
      if (blob === undefined) {
        const data = json[datatype] ?? Array.from(SAMPLES[datatype] as ArrayLike<number>, Number);
        return { name: `x_${datatype}`, datatype, shape: [3], data };
      }
      blobs.push(blob);
      return {
        name: `x_${datatype}`,
        datatype,
        shape: [3],
        parameters: { binary_data_size: blob.byteLength },
      };
    });
    // Binary out for some of each kind of input; JSON out for the others.
    const binaryOut = new Set<V2Datatype>(['FP32', 'BYTES', 'UINT32', 'UINT64']);
    const outputs = ALL_DATATYPES.map((datatype) => ({
      name: `y_${datatype}`,
      parameters: { binary_data: binaryOut.has(datatype) },
    }));
    const { headers, content } = body({ inputs, outputs }, blobs);
    const response = await send(headers, content);
    expect(response.status).toBe(200);
    const decoded = decodeInferenceResponse(response.headers, response.content);
    const byName = new Map(decoded.outputs.map((output) => [output.name, output]));
    const header = JSON.parse(
      new TextDecoder().decode(
        response.content.subarray(
          0,
          Number(response.headers.find(([name]) => name === 'inference-header-content-length')![1]),
        ),
      ),
    ) as { outputs: { name: string; data?: unknown; parameters?: { binary_data_size?: number } }[] };
    for (const output of header.outputs) {
      const binary = binaryOut.has(output.name.slice(2) as V2Datatype);
      expect(output.data === undefined).toBe(binary);
      expect(output.parameters?.binary_data_size !== undefined).toBe(binary);
    }
    // Binary in, binary out: bit-equal to the direct run.
    expect(Buffer.from(rawBytesOf(byName.get('y_FP32')!.data as Float32Array))).toEqual(
      Buffer.from(rawBytesOf(direct.y_FP32!.data as Float32Array)),
    );
    expect(byName.get('y_BYTES')?.data).toEqual(SAMPLES.BYTES);
    // JSON in, binary out.
    expect(byName.get('y_UINT32')?.data).toEqual(SAMPLES.UINT32);
    expect(byName.get('y_UINT64')?.data).toEqual(new BigUint64Array([1n, 2n, 3n]));
    // Binary in, JSON out.
    expect(byName.get('y_INT64')?.data).toEqual([1, -2, 3]);
    expect(byName.get('y_FP16')?.data).toEqual([1, -2, 2 ** -24]);
    // JSON in, JSON out.
    expect(byName.get('y_INT8')?.data).toEqual([-128, 127, 0]);
    expect(byName.get('y_BOOL')?.data).toEqual([true, false, true]);
  });
});

describe('lies in a binary body are refused inside the encryption, and the enclave keeps serving', () => {
  const fp32 = (parameters: Record<string, unknown>) => ({
    name: 'x_FP32',
    datatype: 'FP32',
    shape: [3],
    parameters,
  });
  /** The other inputs as JSON, so only the tensor under test is binary. */
  const rest = ALL_DATATYPES.filter((datatype) => datatype !== 'FP32' && datatype !== 'BYTES').map(
    (datatype) => ({
      name: `x_${datatype}`,
      datatype,
      shape: [1],
      data: [datatype === 'BOOL' ? true : 1],
    }),
  );
  const bytesJson = { name: 'x_BYTES', datatype: 'BYTES', shape: [1], data: ['a'] };
  const twelve = new Uint8Array(12);
  const withHeaderLength = (built: { headers: Field[]; content: Uint8Array }, value: string) => ({
    headers: built.headers.map(([name, field]): Field => [
      name,
      name === 'inference-header-content-length' ? value : field,
    ]),
    content: built.content,
  });
  const valid = () => body({ inputs: [fp32({ binary_data_size: 12 }), bytesJson, ...rest] }, [twelve]);
  const cases: [string, () => { headers: Field[]; content: Uint8Array }][] = [
    [
      'a size that disagrees with shape × element size',
      () => body({ inputs: [fp32({ binary_data_size: 8 }), bytesJson, ...rest] }, [new Uint8Array(8)]),
    ],
    [
      'a size beyond the body',
      () => body({ inputs: [fp32({ binary_data_size: 12 }), bytesJson, ...rest] }, [new Uint8Array(8)]),
    ],
    [
      'a header length beyond the body',
      () => withHeaderLength(valid(), String(valid().content.byteLength + 1)),
    ],
    ['a header length that is not decimal', () => withHeaderLength(valid(), '0x10')],
    ['a header length that cuts the JSON', () => withHeaderLength(valid(), '10')],
    [
      'trailing bytes after the declared tensors',
      () => body({ inputs: [fp32({ binary_data_size: 12 }), bytesJson, ...rest] }, [new Uint8Array(13)]),
    ],
    [
      'a BYTES element that overruns its blob',
      () => {
        const overrun = new Uint8Array([100, 0, 0, 0, 97, 98, 99]);
        const inputs = [
          { name: 'x_FP32', datatype: 'FP32', shape: [1], data: [1] },
          {
            name: 'x_BYTES',
            datatype: 'BYTES',
            shape: [1],
            parameters: { binary_data_size: overrun.byteLength },
          },
          ...rest,
        ];
        return body({ inputs }, [overrun]);
      },
    ],
    [
      'a BYTES element that is not UTF-8',
      () => {
        const blob = new Uint8Array([1, 0, 0, 0, 0xff]);
        const inputs = [
          { name: 'x_FP32', datatype: 'FP32', shape: [1], data: [1] },
          {
            name: 'x_BYTES',
            datatype: 'BYTES',
            shape: [1],
            parameters: { binary_data_size: blob.byteLength },
          },
          ...rest,
        ];
        return body({ inputs }, [blob]);
      },
    ],
    [
      'a BYTES element with a NUL byte (ONNX Runtime would cut it short)',
      () => {
        const blob = encodeBytesElements(['a\u0000b']);
        const inputs = [
          { name: 'x_FP32', datatype: 'FP32', shape: [1], data: [1] },
          {
            name: 'x_BYTES',
            datatype: 'BYTES',
            shape: [1],
            parameters: { binary_data_size: blob.byteLength },
          },
          ...rest,
        ];
        return body({ inputs }, [blob]);
      },
    ],
    [
      'a BOOL byte other than 0 and 1',
      () => {
        const inputs = [
          fp32({ binary_data_size: 12 }),
          bytesJson,
          ...rest.filter((input) => input.datatype !== 'BOOL'),
          { name: 'x_BOOL', datatype: 'BOOL', shape: [1], parameters: { binary_data_size: 1 } },
        ];
        return body({ inputs }, [twelve, new Uint8Array([2])]);
      },
    ],
    [
      'binary_data_size and data together',
      () =>
        body({ inputs: [{ ...fp32({ binary_data_size: 12 }), data: [1, 2, 3] }, bytesJson, ...rest] }, [
          twelve,
        ]),
    ],
    [
      'binary_data_size in a JSON body',
      () => ({
        headers: [['content-type', 'application/json']],
        content: new TextEncoder().encode(
          JSON.stringify({ inputs: [fp32({ binary_data_size: 12 }), bytesJson, ...rest] }),
        ),
      }),
    ],
    [
      'a binary_data_output that is not a boolean',
      () =>
        body(
          {
            parameters: { binary_data_output: 'yes' },
            inputs: [fp32({ binary_data_size: 12 }), bytesJson, ...rest],
          },
          [twelve],
        ),
    ],
  ];

  it.each(cases)('refuses %s with a 400 ERR_INFERENCE_INPUT_INVALID', async (_what, build) => {
    const { headers, content } = build();
    const refused = await send(headers, content);
    expect(refused.status).toBe(400);
    expect(codeIn(refused)).toBe('ERR_INFERENCE_INPUT_INVALID');
    // Still serving: the valid body right after.
    const { headers: good, content: goodContent } = valid();
    expect((await send(good, goodContent)).status).toBe(200);
  });

  it('refuses a binary body of another content type with 415', async () => {
    const { content } = valid();
    const refused = await send(
      [
        ['content-type', 'text/plain'],
        ['inference-header-content-length', String(valid().headers[1]![1])],
      ],
      content,
    );
    expect(refused.status).toBe(415);
    expect(codeIn(refused)).toBe('ERR_HTTP_UNSUPPORTED_MEDIA_TYPE');
  });
});

describe('no copies a hop does not need', () => {
  it('input buffers move to the worker (transfer, not clone)', async () => {
    const inputs = ALL_DATATYPES.map((datatype) => {
      const data =
        datatype === 'BYTES'
          ? ['a', 'b', 'c', 'd']
          : new (
              {
                BOOL: Uint8Array,
                UINT8: Uint8Array,
                INT8: Int8Array,
                UINT16: Uint16Array,
                FP16: Uint16Array,
                INT16: Int16Array,
                UINT32: Uint32Array,
                INT32: Int32Array,
                FP32: Float32Array,
                UINT64: BigUint64Array,
                INT64: BigInt64Array,
                FP64: Float64Array,
              } as const
            )[datatype](4);
      return { name: `x_${datatype}`, type: V2_TO_ONNX_TYPE[datatype], dims: [4], data };
    });
    const outputs = await pool.run(MODEL.name, inputs);
    // A moved buffer is detached on this side: its byteLength reads 0.
    for (const input of inputs)
      if (ArrayBuffer.isView(input.data)) expect(input.data.buffer.byteLength).toBe(0);
    expect(outputs).toHaveLength(ALL_DATATYPES.length);
  });
});
