/**
 * The binary tensor data extension through the real gateway (real HPKE, Binary HTTP, replay
 * window, a real inference pool running ONNX Runtime): every datatype round-trips bit-exactly
 * against direct onnxruntime-node, in binary and in JSON, and mixed in one request; input buffers
 * move to the worker. The refusals are in inference-gateway-binary-refusals.test.ts.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeInferenceResponse, encodeInferenceRequest } from '../../../../client/tensors.ts';
import type { ClientTensor } from '../../../../client/tensors.ts';
import { rawBytesOf } from '../../../../shared/inference/binary-tensor.ts';
import { V2_TO_ONNX_TYPE } from '../../../../shared/inference/v2.ts';
import type { V2Datatype } from '../../../../shared/inference/v2.ts';
import type { Field } from '../../../../shared/ohttp/bhttp.ts';
import { RECEIPT_HEADER, verifyReceipt } from '../../../../shared/receipts.ts';
import {
  body,
  MODEL,
  SAMPLES,
  startBinaryGateway,
  tensorOf,
  wireBytes,
} from '../../../helpers/binary-gateway.ts';
import type { BinaryGateway } from '../../../helpers/binary-gateway.ts';
import { ALL_DATATYPES } from '../../../helpers/identity-models.ts';

let gateway: BinaryGateway;
beforeAll(async () => {
  gateway = await startBinaryGateway();
});
afterAll(() => gateway.close());
const send = (headers: readonly Field[], content: Uint8Array) => gateway.send(headers, content);

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
        Buffer.from(wireBytes(datatype, gateway.direct[`y_${datatype}`]!.data)),
      );
    }
    // The receipt binds the binary bodies exactly as they travelled.
    const encoded = response.headers.find(([name]) => name === RECEIPT_HEADER)![1];
    verifyReceipt(encoded, gateway.receiptKey, {
      model: MODEL.name,
      sha384: MODEL.sha384,
      request: request.content,
      response: response.content,
      keyConfig: gateway.keyConfigBytes,
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
      Buffer.from(rawBytesOf(gateway.direct.y_FP32!.data as Float32Array)),
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
    const outputs = await gateway.pool.run(MODEL.name, inputs);
    // A moved buffer is detached on this side: its byteLength reads 0.
    for (const input of inputs)
      if (ArrayBuffer.isView(input.data)) expect(input.data.buffer.byteLength).toBe(0);
    expect(outputs).toHaveLength(ALL_DATATYPES.length);
  });
});
