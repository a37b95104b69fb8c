/**
 * The enclave's answers as the SDK hands them back (tensors.ts encodes the requests): JSON, or
 * binary tensor bodies whose outputs become typed arrays viewing the decrypted body; and the helpers
 * that turn them back into plain JSON (the CLI prints that) or weigh a request's tensor bytes.
 */
import { ClientError, isNitroInferError } from '../shared/errors.ts';
import {
  BINARY_ELEMENT_BYTES,
  decodeBytesElements,
  float16BitsToNumber,
  numberToFloat16Bits,
  sliceBinaryTensors,
  splitBinaryBody,
  typedArrayOf,
} from '../shared/inference/binary-tensor.ts';
import type { FixedSizeDatatype } from '../shared/inference/binary-tensor.ts';
import type { Field } from '../shared/ohttp/bhttp.ts';
import type { ClientInferenceRequest, ClientInferenceResponse, TypedTensorData } from './tensors.ts';

/** The inner header that says where a binary body's JSON header ends. */
export const INFERENCE_HEADER_LENGTH = 'inference-header-content-length';

/**
 * Decodes a response body: JSON, or binary (outputs with `binary_data_size` become typed arrays
 * viewing the body where aligned, BYTES become strings). The enclave is attested, but its bytes
 * are still checked before they are viewed.
 * @throws {ClientError} `ERR_CLIENT_REQUEST_FAILED` for a body that is not a V2 response.
 */
export function decodeInferenceResponse(
  headers: readonly Field[],
  content: Uint8Array,
): ClientInferenceResponse {
  const headerLength = headers.find(([name]) => name === INFERENCE_HEADER_LENGTH)?.[1];
  try {
    if (headerLength === undefined) return parseJson(content) as ClientInferenceResponse;
    const { header, tensors } = splitBinaryBody(content, headerLength);
    const response = parseJson(header) as ClientInferenceResponse;
    if (!Array.isArray(response.outputs)) throw malformed();
    const declared = response.outputs.filter((output) => output.parameters?.binary_data_size !== undefined);
    const slices = sliceBinaryTensors(
      declared.map((output) => ({
        name: output.name,
        datatype: output.datatype,
        shape: output.shape,
        byteLength: output.parameters?.binary_data_size as number,
      })),
      tensors,
    );
    const bytes = new Map(slices.map((slice) => [slice.declaration.name, slice.bytes]));
    return {
      ...response,
      outputs: response.outputs.map((output) => {
        const blob = bytes.get(output.name);
        if (blob === undefined) return output;
        if (!Object.hasOwn(BINARY_ELEMENT_BYTES, output.datatype) && output.datatype !== 'BYTES')
          throw malformed();
        const data =
          output.datatype === 'BYTES'
            ? decodeBytesElements(blob).map((element) => new TextDecoder().decode(element))
            : (typedArrayOf(output.datatype, blob) as TypedTensorData);
        return { ...output, data };
      }),
    };
  } catch (error) {
    if (error instanceof ClientError) throw error;
    if (isNitroInferError(error)) throw malformed(error.message);
    throw malformed();
  }
}

/**
 * Tensor bytes a request would carry in binary (BYTES not counted): what a caller weighs when
 * choosing binary for JSON input, as the CLI does above a size.
 */
export function tensorDataBytes(request: ClientInferenceRequest): number {
  return request.inputs.reduce((sum, input) => {
    if (ArrayBuffer.isView(input.data)) return sum + input.data.byteLength;
    const { datatype, shape } = input;
    // Input read from a file: whatever is not a well-formed fixed-size tensor counts as nothing here
    // (the enclave refuses it either way).
    if (datatype === undefined || !Object.hasOwn(BINARY_ELEMENT_BYTES, datatype) || !Array.isArray(shape))
      return sum;
    const elements = shape.reduce((product, dimension) => product * Number(dimension), 1);
    return sum + elements * BINARY_ELEMENT_BYTES[datatype as FixedSizeDatatype];
  }, 0);
}

/**
 * A response with every output in JSON form, to print or store: typed arrays become arrays, BOOL
 * booleans, FP16 numbers, and 64-bit integers numbers — or decimal strings beyond 2^53, where a
 * JSON number would no longer be exact.
 */
export function responseAsJson(response: ClientInferenceResponse): ClientInferenceResponse {
  return {
    ...response,
    outputs: response.outputs.map((output) => {
      const { data, datatype } = output;
      if (!ArrayBuffer.isView(data)) return output;
      if (datatype === 'FP16') return { ...output, data: [...float16ToNumbers(data as Uint16Array)] };
      if (datatype === 'BOOL')
        return { ...output, data: Array.from(data as Uint8Array, (value) => value !== 0) };
      const values = Array.from(data as ArrayLike<number | bigint>, (value) =>
        typeof value !== 'bigint'
          ? value
          : value <= BigInt(Number.MAX_SAFE_INTEGER) && value >= -BigInt(Number.MAX_SAFE_INTEGER)
            ? Number(value)
            : value.toString(),
      );
      return { ...output, data: values };
    }),
  };
}

/** The numbers an FP16 tensor's bit patterns stand for. */
export function float16ToNumbers(bits: Uint16Array): Float64Array {
  return Float64Array.from(bits, float16BitsToNumber);
}

/** The binary16 bit patterns nearest to `values` (round to nearest, ties to even). */
export function numbersToFloat16(values: ArrayLike<number>): Uint16Array {
  return Uint16Array.from(values as number[], numberToFloat16Bits);
}

function parseJson(bytes: Uint8Array): unknown {
  try {
    return JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch {
    throw malformed('the enclave answered with something that is not JSON');
  }
}

function malformed(detail?: string): ClientError {
  return new ClientError(
    'ERR_CLIENT_REQUEST_FAILED',
    `the enclave's response is not a V2 response${detail === undefined ? '' : `: ${detail}`}`,
  );
}
