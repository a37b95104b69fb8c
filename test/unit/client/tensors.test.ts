/**
 * The SDK's tensor bodies: typed arrays go binary by default (their memory is the wire format) and
 * ask for binary outputs; JSON still works; data that does not fit its datatype is refused before
 * anything is sent; binary responses become typed arrays and a malformed one is a typed error.
 */
import { describe, expect, it } from 'vitest';
import {
  decodeInferenceResponse,
  encodeInferenceRequest,
  float16ToNumbers,
  numbersToFloat16,
  responseAsJson,
  tensorDataBytes,
} from '../../../client/tensors.ts';
import type { ClientTensor } from '../../../client/tensors.ts';
import { binaryBodyPieces, rawBytesOf } from '../../../shared/inference/binary-tensor.ts';
import type { Field } from '../../../shared/ohttp/bhttp.ts';
import { codeOf } from '../../helpers/codes.ts';

const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
const headerLength = (headers: readonly Field[]) =>
  Number(headers.find(([name]) => name === 'inference-header-content-length')?.[1]);

function binaryResponse(header: unknown, blobs: Uint8Array[]): { headers: Field[]; content: Uint8Array } {
  const { pieces, headerLength: length } = binaryBodyPieces(header, blobs);
  return {
    headers: [
      ['content-type', 'application/octet-stream'],
      ['inference-header-content-length', String(length)],
    ],
    content: new Uint8Array(Buffer.concat(pieces)),
  };
}

describe('encodeInferenceRequest', () => {
  it('sends typed arrays in binary by default, their own bytes, and asks for binary outputs', () => {
    const x = new Float32Array([1.5, Number.NaN, -0]);
    const ids = new BigInt64Array([2n ** 63n - 1n]);
    const { content, headers } = encodeInferenceRequest({
      inputs: [
        { name: 'x', shape: [3], data: x },
        { name: 'ids', shape: [1], data: ids },
      ],
    });
    expect(headers[0]).toEqual(['content-type', 'application/octet-stream']);
    const length = headerLength(headers);
    const header = JSON.parse(text(content.subarray(0, length)));
    expect(header).toEqual({
      parameters: { binary_data_output: true },
      inputs: [
        { name: 'x', shape: [3], datatype: 'FP32', parameters: { binary_data_size: 12 } },
        { name: 'ids', shape: [1], datatype: 'INT64', parameters: { binary_data_size: 8 } },
      ],
    });
    expect(Buffer.from(content.subarray(length))).toEqual(Buffer.concat([rawBytesOf(x), rawBytesOf(ids)]));
  });

  it('keeps the caller’s choice of binary outputs per output', () => {
    const { content, headers } = encodeInferenceRequest({
      inputs: [{ name: 'x', shape: [1], data: new Float32Array(1) }],
      outputs: [{ name: 'y', parameters: { binary_data: false } }],
    });
    const header = JSON.parse(text(content.subarray(0, headerLength(headers))));
    expect(header.parameters).toBeUndefined();
    expect(header.outputs).toEqual([{ name: 'y', parameters: { binary_data: false } }]);
  });

  it('sends JSON without typed arrays, and converts typed arrays when binary is off', () => {
    const plain = encodeInferenceRequest({
      inputs: [{ name: 'x', shape: [2], datatype: 'FP32', data: [1, 2] }],
    });
    expect(plain.headers).toEqual([['content-type', 'application/json']]);
    expect(JSON.parse(text(plain.content)).inputs[0].data).toEqual([1, 2]);
    const converted = encodeInferenceRequest(
      {
        inputs: [
          { name: 'h', shape: [2], datatype: 'FP16', data: numbersToFloat16([1, -2]) },
          { name: 'b', shape: [2], datatype: 'BOOL', data: new Uint8Array([1, 0]) },
          { name: 'i', shape: [1], data: new BigInt64Array([5n]) },
        ],
      },
      { binary: false },
    );
    expect(JSON.parse(text(converted.content)).inputs.map((input: { data: unknown }) => input.data)).toEqual([
      [1, -2],
      [true, false],
      [5],
    ]);
  });

  it('encodes JSON arrays (nested too) and BYTES in binary when asked', () => {
    const { content, headers } = encodeInferenceRequest(
      {
        inputs: [
          {
            name: 'x',
            shape: [2, 2],
            datatype: 'INT16',
            data: [[1, -2] as unknown as number, [3, 4] as unknown as number],
          },
          { name: 's', shape: [2], datatype: 'BYTES', data: ['ab', 'é'] },
        ],
      },
      { binary: true },
    );
    const tensors = content.subarray(headerLength(headers));
    expect(Buffer.from(tensors)).toEqual(
      Buffer.concat([
        rawBytesOf(new Int16Array([1, -2, 3, 4])),
        Buffer.from([2, 0, 0, 0, 0x61, 0x62, 2, 0, 0, 0, 0xc3, 0xa9]),
      ]),
    );
  });

  it.each<[string, ClientTensor, boolean | undefined]>([
    [
      'a typed array of another datatype',
      { name: 'x', shape: [1], datatype: 'INT32', data: new Float32Array(1) },
      undefined,
    ],
    [
      'FP16 not as a Uint16Array',
      { name: 'x', shape: [1], datatype: 'FP16', data: new Float32Array(1) },
      undefined,
    ],
    ['a plain array without a datatype', { name: 'x', shape: [1], data: [1] }, undefined],
    ['a value a UINT8 cannot hold', { name: 'x', shape: [1], datatype: 'UINT8', data: [300] }, true],
    ['a fraction as INT64', { name: 'x', shape: [1], datatype: 'INT64', data: [1.5] }, true],
    ['a value beyond FP16', { name: 'x', shape: [1], datatype: 'FP16', data: [70000] }, true],
    ['a number as BOOL', { name: 'x', shape: [1], datatype: 'BOOL', data: [1] }, true],
    [
      'an INT64 beyond JSON’s exact range',
      { name: 'x', shape: [1], data: new BigInt64Array([2n ** 60n]) },
      false,
    ],
  ])('refuses %s before sending', (_what, input, binary) => {
    expect(
      codeOf(() => encodeInferenceRequest({ inputs: [input] }, binary === undefined ? {} : { binary })),
    ).toBe('ERR_INFERENCE_INPUT_INVALID');
  });
});

describe('decodeInferenceResponse', () => {
  it('turns binary outputs into typed arrays (also unaligned ones) and keeps JSON outputs', () => {
    const y = new Float32Array([0.5, Number.NaN]);
    const { headers, content } = binaryResponse(
      {
        model_name: 'm',
        outputs: [
          { name: 'b', datatype: 'BOOL', shape: [1], parameters: { binary_data_size: 1 } },
          { name: 'y', datatype: 'FP32', shape: [2], parameters: { binary_data_size: 8 } },
          { name: 'j', datatype: 'INT32', shape: [1], data: [7] },
          { name: 's', datatype: 'BYTES', shape: [1], parameters: { binary_data_size: 6 } },
        ],
      },
      [new Uint8Array([1]), rawBytesOf(y), new Uint8Array([2, 0, 0, 0, 0x68, 0x69])],
    );
    const response = decodeInferenceResponse(headers, content);
    const [b, decodedY, j, s] = response.outputs;
    expect(b!.data).toEqual(new Uint8Array([1]));
    expect(Buffer.from(rawBytesOf(decodedY!.data as Float32Array))).toEqual(Buffer.from(rawBytesOf(y)));
    expect(j!.data).toEqual([7]);
    expect(s!.data).toEqual(['hi']);
    expect(responseAsJson(response).outputs.map((output) => output.data)).toEqual([
      [true],
      [0.5, Number.NaN],
      [7],
      ['hi'],
    ]);
  });

  it.each([
    ['a size that disagrees with the shape', 4],
    ['a size beyond the body', 12],
  ])('refuses %s with ERR_CLIENT_REQUEST_FAILED', (_what, size) => {
    const { headers, content } = binaryResponse(
      {
        model_name: 'm',
        outputs: [{ name: 'y', datatype: 'FP32', shape: [2], parameters: { binary_data_size: size } }],
      },
      [new Uint8Array(8)],
    );
    expect(codeOf(() => decodeInferenceResponse(headers, content))).toBe('ERR_CLIENT_REQUEST_FAILED');
  });

  it('refuses trailing bytes and a header length beyond the body', () => {
    const { headers, content } = binaryResponse(
      {
        model_name: 'm',
        outputs: [{ name: 'y', datatype: 'FP32', shape: [1], parameters: { binary_data_size: 4 } }],
      },
      [new Uint8Array(5)],
    );
    expect(codeOf(() => decodeInferenceResponse(headers, content))).toBe('ERR_CLIENT_REQUEST_FAILED');
    const beyond: Field[] = [['inference-header-content-length', String(content.byteLength + 1)]];
    expect(codeOf(() => decodeInferenceResponse(beyond, content))).toBe('ERR_CLIENT_REQUEST_FAILED');
  });
});

describe('helpers', () => {
  it('FP16 conversions and the JSON form of 64-bit outputs beyond 2^53', () => {
    expect([...float16ToNumbers(numbersToFloat16([1, 0.1, -65504]))]).toEqual([1, 0.0999755859375, -65504]);
    const json = responseAsJson({
      model_name: 'm',
      outputs: [
        { name: 'y', datatype: 'UINT64', shape: [2], data: new BigUint64Array([3n, 2n ** 64n - 1n]) },
      ],
    });
    expect(json.outputs[0]!.data).toEqual([3, '18446744073709551615']);
  });

  it('counts the tensor bytes a request would carry in binary', () => {
    expect(
      tensorDataBytes({
        inputs: [
          { name: 'a', shape: [2, 3], datatype: 'FP32', data: [] },
          { name: 'b', shape: [1], data: new Float64Array(4) },
          { name: 's', shape: [9], datatype: 'BYTES', data: [] },
        ],
      }),
    ).toBe(24 + 32);
  });
});
