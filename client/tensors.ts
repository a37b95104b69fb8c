/**
 * Tensors as the SDK's caller holds them — typed arrays or plain arrays — and the two body forms
 * the enclave reads: V2 JSON, and the binary tensor data extension (a JSON header, then raw
 * little-endian tensors; shared/inference/binary-tensor.ts). Binary is the default as soon as one
 * input is a typed array: its memory is already the wire format, so it is sent without conversion,
 * and the outputs come back as typed arrays too. FP16 travels as the Uint16Array of its bit
 * patterns (Node 20 has no Float16Array); `float16ToNumbers` reads them. Responses are decoded in
 * tensor-response.ts.
 */
import { InferenceError } from '../shared/errors.ts';
import {
  binaryBodyPieces,
  encodeBytesElements,
  float16BitsToNumber,
  numberToFloat16Bits,
  rawBytesOf,
} from '../shared/inference/binary-tensor.ts';
import type { FixedSizeDatatype } from '../shared/inference/binary-tensor.ts';
import { MAX_RANK } from '../shared/inference/v2.ts';
import type { V2Datatype, V2RequestedOutput, V2TensorData } from '../shared/inference/v2.ts';
import { INFERENCE_HEADER_LENGTH } from './tensor-response.ts';

/** The typed arrays a tensor may be given as (and binary outputs come back as). */
export type TypedTensorData =
  | Uint8Array
  | Int8Array
  | Uint16Array
  | Int16Array
  | Uint32Array
  | Int32Array
  | BigUint64Array
  | BigInt64Array
  | Float32Array
  | Float64Array;

/** An input tensor: `datatype` may be left out for a typed array (BOOL and FP16 must be named). */
export interface ClientTensor {
  readonly name: string;
  readonly shape: readonly number[];
  readonly datatype?: V2Datatype;
  readonly data: V2TensorData | TypedTensorData;
  readonly parameters?: Readonly<Record<string, unknown>>;
}

/** A V2 request as the SDK takes it. */
export interface ClientInferenceRequest {
  readonly id?: string;
  readonly parameters?: Readonly<Record<string, unknown>>;
  readonly inputs: readonly ClientTensor[];
  readonly outputs?: readonly V2RequestedOutput[];
}

/** An output: JSON elements, or a typed array (BYTES: strings) when it came back in binary. */
export interface ClientOutputTensor {
  readonly name: string;
  readonly shape: readonly number[];
  readonly datatype: V2Datatype;
  readonly data: V2TensorData | TypedTensorData;
  readonly parameters?: Readonly<Record<string, unknown>>;
}

/** A V2 response as the SDK returns it. */
export interface ClientInferenceResponse {
  readonly model_name: string;
  readonly model_version?: string;
  readonly id?: string;
  readonly outputs: readonly ClientOutputTensor[];
}

/** Options of an inference call. */
export interface InferOptions {
  /**
   * Send the binary tensor data extension (and ask for binary outputs). Default: binary when any
   * input is a typed array.
   */
  readonly binary?: boolean;
}

/** An encoded request body and the inner headers that describe it. */
export interface EncodedRequest {
  readonly content: Uint8Array;
  readonly headers: [string, string][];
}

/** The datatype a typed array stands for when none is named. */
const DATATYPE_OF: readonly [abstract new (...args: never[]) => TypedTensorData, FixedSizeDatatype][] = [
  [Float32Array, 'FP32'],
  [Float64Array, 'FP64'],
  [Uint8Array, 'UINT8'],
  [Int8Array, 'INT8'],
  [Uint16Array, 'UINT16'],
  [Int16Array, 'INT16'],
  [Uint32Array, 'UINT32'],
  [Int32Array, 'INT32'],
  [BigUint64Array, 'UINT64'],
  [BigInt64Array, 'INT64'],
];

/** Typed arrays that hold each datatype's elements in the wire format. */
const ARRAY_FOR: Record<FixedSizeDatatype, abstract new (...args: never[]) => TypedTensorData> = {
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
};

/**
 * Encodes a request: binary (`options.binary`, default when an input is a typed array) or JSON.
 * @throws {InferenceError} `ERR_INFERENCE_INPUT_INVALID` for data that does not fit its datatype.
 */
export function encodeInferenceRequest(
  request: ClientInferenceRequest,
  options: InferOptions = {},
): EncodedRequest {
  const binary = options.binary ?? request.inputs.some((input) => ArrayBuffer.isView(input.data));
  const inputs = request.inputs.map((input) => ({ ...input, datatype: datatypeOf(input) }));
  if (!binary) {
    const body = { ...request, inputs: inputs.map((input) => ({ ...input, data: jsonData(input) })) };
    return {
      content: new TextEncoder().encode(JSON.stringify(body)),
      headers: [['content-type', 'application/json']],
    };
  }
  const blobs: Uint8Array[] = [];
  const declared = inputs.map(({ data: _data, ...input }, index) => {
    const blob = binaryData(inputs[index] as ClientTensor & { datatype: V2Datatype });
    blobs.push(blob);
    return { ...input, parameters: { ...input.parameters, binary_data_size: blob.byteLength } };
  });
  // Outputs in binary too, unless the caller chose per output.
  const asksPerOutput = request.outputs?.some((output) => output.parameters?.binary_data !== undefined);
  const parameters =
    asksPerOutput === true || request.parameters?.binary_data_output !== undefined
      ? request.parameters
      : { ...request.parameters, binary_data_output: true };
  const header = { ...request, ...(parameters === undefined ? {} : { parameters }), inputs: declared };
  const { pieces, headerLength, byteLength } = binaryBodyPieces(header, blobs);
  const content = new Uint8Array(byteLength);
  let offset = 0;
  for (const piece of pieces) {
    content.set(piece, offset);
    offset += piece.byteLength;
  }
  return {
    content,
    headers: [
      ['content-type', 'application/octet-stream'],
      [INFERENCE_HEADER_LENGTH, String(headerLength)],
    ],
  };
}

function datatypeOf(input: ClientTensor): V2Datatype {
  const { data, datatype } = input;
  if (!ArrayBuffer.isView(data)) {
    if (datatype === undefined) throw invalid(`input ${input.name} needs a datatype`);
    return datatype;
  }
  if (datatype === undefined) {
    const found = DATATYPE_OF.find(([constructor]) => data instanceof constructor);
    if (found === undefined) throw invalid(`input ${input.name} is a typed array with no V2 datatype`);
    return found[1];
  }
  if (datatype === 'BYTES' || !(data instanceof ARRAY_FOR[datatype]))
    throw invalid(`input ${input.name}: a ${data.constructor.name} cannot hold ${datatype}`);
  return datatype;
}

/** A tensor's raw bytes: the typed array's own memory (no copy), or its elements converted. */
function binaryData(input: ClientTensor & { datatype: V2Datatype }): Uint8Array {
  const { data, datatype } = input;
  if (datatype === 'BYTES') {
    if (ArrayBuffer.isView(data) || !data.every((element) => typeof element === 'string'))
      throw invalid(`input ${input.name}: BYTES takes strings`);
    return encodeBytesElements(data as string[]);
  }
  if (ArrayBuffer.isView(data)) return rawBytesOf(data);
  const Typed = ARRAY_FOR[datatype] as unknown as {
    from(values: ArrayLike<unknown>, map: (value: unknown) => unknown): TypedTensorData;
  };
  const wide = datatype === 'INT64' || datatype === 'UINT64';
  // V2 JSON may nest data by dimension; the binary form is flat, row-major. A count that does not
  // match the shape is the enclave's to refuse (it checks the size against shape × element size).
  const flat = (data as unknown[]).flat(MAX_RANK);
  const integer = !['FP16', 'FP32', 'FP64', 'BOOL'].includes(datatype);
  const typed = Typed.from(flat, (value) => {
    if (datatype === 'BOOL') {
      if (typeof value !== 'boolean') throw invalid(`input ${input.name} must hold booleans`);
      return value ? 1 : 0;
    }
    if (typeof value !== 'number' || !Number.isFinite(value))
      throw invalid(`input ${input.name} must hold finite numbers`);
    if (datatype === 'FP16') return numberToFloat16Bits(value);
    if (integer && !Number.isSafeInteger(value)) throw invalid(`input ${input.name} must hold integers`);
    return wide ? BigInt(value) : value;
  });
  // A typed array wraps what does not fit (300 in a Uint8Array reads 44): refused, as the enclave
  // refuses it in JSON, rather than sent as other numbers.
  flat.forEach((value, index) => {
    const stored = typed[index] as number | bigint;
    const exact =
      typeof stored === 'bigint' ? stored === BigInt(value as number) : !integer || stored === value;
    const finite = datatype !== 'FP16' || ((stored as number) & 0x7c00) !== 0x7c00;
    if (!exact || !finite) throw invalid(`input ${input.name} holds values outside ${datatype}`);
  });
  return rawBytesOf(typed);
}

/** JSON elements of a tensor (typed arrays converted; FP16 bit patterns become numbers). */
function jsonData(input: ClientTensor & { datatype: V2Datatype }): V2TensorData {
  const { data, datatype } = input;
  if (!ArrayBuffer.isView(data)) return data;
  if (datatype === 'FP16') return Array.from(data as Uint16Array, float16BitsToNumber);
  if (datatype === 'BOOL') return Array.from(data as Uint8Array, (value) => value !== 0);
  return Array.from(data as ArrayLike<number | bigint>, (value) => {
    if (
      typeof value === 'bigint' &&
      (value > BigInt(Number.MAX_SAFE_INTEGER) || value < -BigInt(Number.MAX_SAFE_INTEGER))
    )
      throw invalid(`input ${input.name} holds an integer JSON cannot carry exactly; send it in binary`);
    return Number(value);
  });
}

/** The code the enclave would answer with: the request is refused before it is sent. */
function invalid(message: string): InferenceError {
  return new InferenceError('ERR_INFERENCE_INPUT_INVALID', message);
}

export {
  decodeInferenceResponse,
  float16ToNumbers,
  numbersToFloat16,
  responseAsJson,
  tensorDataBytes,
} from './tensor-response.ts';
