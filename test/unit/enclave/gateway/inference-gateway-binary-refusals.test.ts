/**
 * Every lie in a binary tensor body, through the real gateway: a typed 400
 * (ERR_INFERENCE_INPUT_INVALID) inside the encryption, and the enclave serves the next request.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeBytesElements } from '../../../../shared/inference/binary-tensor.ts';
import type { Field } from '../../../../shared/ohttp/bhttp.ts';
import { body, codeIn, startBinaryGateway } from '../../../helpers/binary-gateway.ts';
import type { BinaryGateway } from '../../../helpers/binary-gateway.ts';
import { ALL_DATATYPES } from '../../../helpers/identity-models.ts';

let gateway: BinaryGateway;
beforeAll(async () => {
  gateway = await startBinaryGateway();
});
afterAll(() => gateway.close());
const send = (headers: readonly Field[], content: Uint8Array) => gateway.send(headers, content);

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
