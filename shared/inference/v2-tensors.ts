/**
 * V2 tensors ⇄ the flat tensors ONNX Runtime takes and gives: JSON elements are converted (FP16
 * through its bit patterns, Node 20 has no Float16Array); binary tensors (binary-tensor.ts) are
 * viewed in place in the request body and outputs asked for in binary are handed back as views of
 * the worker's own buffers, so neither direction copies their bytes here.
 */
import { InferenceError } from '../errors.ts';
import {
  decodeBytesElements,
  encodeBytesElements,
  float16BitsToNumber,
  numberToFloat16Bits,
  rawBytesOf,
  typedArrayOf,
} from './binary-tensor.ts';
import { V2_TO_ONNX_TYPE } from './v2.ts';
import type {
  FlatTensor,
  TensorMetadata,
  V2Datatype,
  V2InferenceRequest,
  V2ModelMetadata,
  V2Tensor,
} from './v2.ts';

/**
 * Checks a request against a model's declared inputs (names, datatypes, ranks, fixed dimensions)
 * and converts it to flat tensors.
 * @throws {InferenceError} `ERR_INFERENCE_INPUT_INVALID`.
 */
export function toFlatTensors(request: V2InferenceRequest, metadata: V2ModelMetadata): FlatTensor[] {
  const declared = new Map(metadata.inputs.map((input) => [input.name, input]));
  if (request.inputs.length !== declared.size) {
    throw invalid(
      `model ${metadata.name} takes ${declared.size} inputs (${[...declared.keys()].join(', ')}), got ${request.inputs.length}`,
    );
  }
  const outputNames = new Set(metadata.outputs.map((output) => output.name));
  for (const output of request.outputs ?? []) {
    if (!outputNames.has(output.name))
      throw invalid(`model ${metadata.name} has no output ${JSON.stringify(output.name.slice(0, 64))}`);
  }
  return request.inputs.map((input) => {
    const expected = declared.get(input.name);
    if (expected === undefined)
      throw invalid(`model ${metadata.name} has no input ${JSON.stringify(input.name.slice(0, 64))}`);
    if (expected.datatype !== input.datatype)
      throw invalid(`input ${input.name} must be ${expected.datatype}, got ${input.datatype}`);
    if (expected.shape.length !== input.shape.length)
      throw invalid(`input ${input.name} must have rank ${expected.shape.length}, got ${input.shape.length}`);
    expected.shape.forEach((dimension, axis) => {
      if (dimension >= 0 && input.shape[axis] !== dimension) {
        throw invalid(`input ${input.name} dimension ${axis} must be ${dimension}, got ${input.shape[axis]}`);
      }
    });
    return {
      name: input.name,
      type: V2_TO_ONNX_TYPE[input.datatype],
      dims: input.shape,
      data: input.binary === undefined ? toTypedArray(input) : fromBinary(input, input.binary),
    };
  });
}

/**
 * Converts an ONNX Runtime output to V2: JSON elements, or with `binary` its raw bytes (a view of
 * the output's own buffer; BYTES length-prefixed).
 */
export function fromFlatTensor(tensor: FlatTensor, binary = false): V2Tensor {
  const datatype = (Object.keys(V2_TO_ONNX_TYPE) as V2Datatype[]).find(
    (key) => V2_TO_ONNX_TYPE[key] === tensor.type,
  );
  if (datatype === undefined)
    throw new InferenceError(
      'ERR_INFERENCE_FAILED',
      `output ${tensor.name} has unsupported type ${tensor.type}`,
    );
  const shape = [...tensor.dims];
  if (datatype === 'BYTES') {
    const strings = tensor.data as readonly string[];
    return binary
      ? { name: tensor.name, datatype, shape, data: [], binary: encodeBytesElements(strings) }
      : { name: tensor.name, datatype, shape, data: [...strings] };
  }
  const data = tensor.data as ArrayBufferView;
  if (binary) return { name: tensor.name, datatype, shape, data: [], binary: rawBytesOf(data) };
  const values = Array.from(data as unknown as ArrayLike<number | bigint>, (value) => {
    if (typeof value !== 'bigint') {
      if (datatype === 'BOOL') return value !== 0;
      return datatype === 'FP16' ? float16BitsToNumber(value) : value;
    }
    if (value > BigInt(Number.MAX_SAFE_INTEGER) || value < BigInt(Number.MIN_SAFE_INTEGER)) {
      throw new InferenceError(
        'ERR_INFERENCE_FAILED',
        `output ${tensor.name} holds an integer beyond JSON's exact range`,
      );
    }
    return Number(value);
  });
  return { name: tensor.name, datatype, shape, data: values };
}

/** Maps ONNX Runtime's type and shape (symbolic dimensions become -1) to V2 metadata. */
export function tensorMetadata(
  name: string,
  onnxType: string,
  shape: readonly (number | string)[],
): TensorMetadata {
  const datatype = (Object.keys(V2_TO_ONNX_TYPE) as V2Datatype[]).find(
    (key) => V2_TO_ONNX_TYPE[key] === onnxType,
  );
  if (datatype === undefined)
    throw new InferenceError('ERR_INFERENCE_FAILED', `tensor ${name} has unsupported type ${onnxType}`);
  return {
    name,
    datatype,
    shape: shape.map((dimension) => (typeof dimension === 'number' && dimension >= 0 ? dimension : -1)),
  };
}

/** A binary tensor's bytes (already checked against its shape) as ONNX Runtime takes them. */
function fromBinary(tensor: V2Tensor, bytes: Uint8Array): ArrayBufferView | string[] {
  if (tensor.datatype === 'BYTES') {
    // ONNX Runtime's string tensors hold text: an element that is not UTF-8 cannot be one.
    const decoder = new TextDecoder('utf-8', { fatal: true });
    let strings: string[];
    try {
      strings = decodeBytesElements(bytes).map((element) => decoder.decode(element));
    } catch {
      throw invalid(`input ${tensor.name} holds a BYTES element that is not UTF-8`);
    }
    return withoutNul(tensor.name, strings);
  }
  if (tensor.datatype === 'BOOL' && bytes.some((byte) => byte > 1))
    throw invalid(`input ${tensor.name} holds BOOL bytes other than 0 and 1`);
  return typedArrayOf(tensor.datatype, bytes);
}

/**
 * onnxruntime-node hands string tensors to ONNX Runtime as C strings: an element would silently
 * end at its first NUL, so the model would see other data than was sent. Refused instead.
 */
function withoutNul(name: string, strings: string[]): string[] {
  if (strings.some((element) => element.includes('\u0000')))
    throw invalid(`input ${name} holds a BYTES element with a NUL byte, which ONNX Runtime would cut short`);
  return strings;
}

function toTypedArray(tensor: V2Tensor): ArrayBufferView | string[] {
  const data = tensor.data;
  switch (tensor.datatype) {
    case 'BYTES':
      return withoutNul(tensor.name, [...(data as string[])]);
    case 'FP16':
      return Uint16Array.from(data as number[], (value) => {
        const bits = numberToFloat16Bits(value);
        // Finite in, infinite out: the value lies beyond binary16's range.
        if ((bits & 0x7c00) === 0x7c00) throw invalid(`input ${tensor.name} holds values outside FP16`);
        return bits;
      });
    case 'BOOL':
      return Uint8Array.from(data, (value) => (value === true ? 1 : 0));
    case 'FP32':
      return Float32Array.from(data as number[]);
    case 'FP64':
      return Float64Array.from(data as number[]);
    case 'INT64':
    case 'UINT64': {
      const typed =
        tensor.datatype === 'INT64' ? new BigInt64Array(data.length) : new BigUint64Array(data.length);
      data.forEach((value, index) => {
        if (!Number.isInteger(value)) throw invalid(`input ${tensor.name} must hold integers`);
        const exact = BigInt(value as number);
        typed[index] = exact;
        // A 64-bit typed array stores the value modulo 2^64; reading it back shows a wrap.
        if (typed[index] !== exact)
          throw invalid(`input ${tensor.name} holds values outside ${tensor.datatype}`);
      });
      return typed;
    }
    default: {
      const constructors = {
        UINT8: Uint8Array,
        INT8: Int8Array,
        UINT16: Uint16Array,
        INT16: Int16Array,
        UINT32: Uint32Array,
        INT32: Int32Array,
      } as const;
      const typed = constructors[tensor.datatype].from(data as number[]);
      if (!typed.every((value, index) => value === data[index]))
        throw invalid(`input ${tensor.name} holds values outside ${tensor.datatype}`);
      return typed;
    }
  }
}

function invalid(message: string): InferenceError {
  return new InferenceError('ERR_INFERENCE_INPUT_INVALID', message);
}
