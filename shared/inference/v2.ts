/**
 * Open Inference Protocol v2 (KServe / Triton) JSON types, and their strict validation: requests
 * come from clients through the parent and are bounded and checked before a tensor is built.
 * Tensors are converted to the flat typed arrays ONNX Runtime takes, and back.
 */
import { InferenceError } from '../errors.ts';

/** V2 datatypes nitro-infer serves, and the ONNX Runtime tensor type of each. */
export const V2_TO_ONNX_TYPE = {
  BOOL: 'bool',
  UINT8: 'uint8',
  INT8: 'int8',
  UINT16: 'uint16',
  INT16: 'int16',
  UINT32: 'uint32',
  INT32: 'int32',
  UINT64: 'uint64',
  INT64: 'int64',
  FP32: 'float32',
  FP64: 'float64',
} as const;

/** A V2 datatype. */
export type V2Datatype = keyof typeof V2_TO_ONNX_TYPE;

/** ONNX Runtime tensor types nitro-infer maps. */
export type OnnxTensorType = (typeof V2_TO_ONNX_TYPE)[V2Datatype];

/** `GET /v2` server metadata: the name and version of this server. */
export const SERVER_NAME = 'nitro-infer';
/** The package version (a unit test keeps it equal to package.json's). */
export const SERVER_VERSION = '0.1.0';
/**
 * Protocol extensions the gateway implements, as `GET /v2` lists them. `binary_tensor_data` joins
 * once the gateway's infer path takes binary bodies.
 */
export const SERVER_EXTENSIONS: readonly string[] = [];
/** Request-level parameters the server acts on itself; every other one is echoed in the response. */
export const SERVER_PARAMETERS: ReadonlySet<string> = new Set(['binary_data_output']);

/** Most inputs one request may carry. */
export const MAX_INPUTS = 64;
/** Most dimensions of one tensor. */
export const MAX_RANK = 8;
/** Most elements of one input tensor (64 Mi; 256 MiB as FP32, below the link's frame bound). */
export const MAX_TENSOR_ELEMENTS = 64 * 1024 * 1024;

/** A tensor in V2 JSON form. */
export interface V2Tensor {
  readonly name: string;
  readonly shape: readonly number[];
  readonly datatype: V2Datatype;
  readonly data: readonly (number | boolean)[];
  readonly parameters?: Readonly<Record<string, unknown>>;
}

/** `POST /v2/models/{name}/infer` body. */
export interface V2InferenceRequest {
  readonly id?: string;
  readonly parameters?: Readonly<Record<string, unknown>>;
  readonly inputs: readonly V2Tensor[];
  readonly outputs?: readonly { readonly name: string }[];
}

/** The answer to a V2 inference request. */
export interface V2InferenceResponse {
  readonly model_name: string;
  readonly model_version?: string;
  readonly id?: string;
  readonly parameters?: Readonly<Record<string, unknown>>;
  readonly outputs: readonly V2Tensor[];
}

/** A tensor's declared signature; `-1` marks a dynamic dimension. */
export interface TensorMetadata {
  readonly name: string;
  readonly datatype: V2Datatype;
  readonly shape: readonly number[];
}

/** `GET /v2/models/{name}` body. */
export interface V2ModelMetadata {
  readonly name: string;
  readonly versions?: readonly string[];
  readonly platform: 'onnx_onnxv1';
  readonly inputs: readonly TensorMetadata[];
  readonly outputs: readonly TensorMetadata[];
}

/** A tensor ready for ONNX Runtime. */
export interface FlatTensor {
  readonly name: string;
  readonly type: OnnxTensorType;
  readonly dims: readonly number[];
  readonly data: ArrayBufferView;
}

/**
 * Validates an untrusted V2 request body (already JSON-parsed).
 * @throws {InferenceError} `ERR_INFERENCE_INPUT_INVALID`.
 */
export function parseInferenceRequest(body: unknown): V2InferenceRequest {
  if (!isRecord(body)) throw invalid('the request must be a JSON object');
  for (const key of Object.keys(body)) {
    if (!['id', 'parameters', 'inputs', 'outputs'].includes(key))
      throw invalid(`unknown request field ${JSON.stringify(key.slice(0, 40))}`);
  }
  if (body.id !== undefined && (typeof body.id !== 'string' || body.id.length > 256))
    throw invalid('id must be a string of at most 256 characters');
  if (body.parameters !== undefined && !isRecord(body.parameters))
    throw invalid('parameters must be an object');
  if (!Array.isArray(body.inputs) || body.inputs.length === 0 || body.inputs.length > MAX_INPUTS) {
    throw invalid(`inputs must be an array of 1 to ${MAX_INPUTS} tensors`);
  }
  const inputs = body.inputs.map((input: unknown, index) => parseTensor(input, `inputs[${index}]`));
  const names = new Set(inputs.map((input) => input.name));
  if (names.size !== inputs.length) throw invalid('input names must be unique');
  let outputs: { name: string }[] | undefined;
  if (body.outputs !== undefined) {
    if (!Array.isArray(body.outputs) || body.outputs.length > MAX_INPUTS)
      throw invalid('outputs must be an array');
    outputs = body.outputs.map((output: unknown) => {
      if (!isRecord(output) || typeof output.name !== 'string' || output.name.length === 0)
        throw invalid('each requested output needs a name');
      return { name: output.name };
    });
  }
  return {
    inputs,
    ...(body.id === undefined ? {} : { id: body.id as string }),
    ...(body.parameters === undefined ? {} : { parameters: body.parameters as Record<string, unknown> }),
    ...(outputs === undefined ? {} : { outputs }),
  };
}

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
      data: toTypedArray(input),
    };
  });
}

/** Converts an ONNX Runtime output to V2 JSON. */
export function fromFlatTensor(tensor: FlatTensor): V2Tensor {
  const datatype = (Object.keys(V2_TO_ONNX_TYPE) as V2Datatype[]).find(
    (key) => V2_TO_ONNX_TYPE[key] === tensor.type,
  );
  if (datatype === undefined)
    throw new InferenceError(
      'ERR_INFERENCE_FAILED',
      `output ${tensor.name} has unsupported type ${tensor.type}`,
    );
  const values = Array.from(tensor.data as unknown as ArrayLike<number | bigint>, (value) => {
    if (typeof value !== 'bigint') return datatype === 'BOOL' ? value !== 0 : value;
    if (value > BigInt(Number.MAX_SAFE_INTEGER) || value < BigInt(Number.MIN_SAFE_INTEGER)) {
      throw new InferenceError(
        'ERR_INFERENCE_FAILED',
        `output ${tensor.name} holds an integer beyond JSON's exact range`,
      );
    }
    return Number(value);
  });
  return { name: tensor.name, datatype, shape: [...tensor.dims], data: values };
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

function parseTensor(value: unknown, where: string): V2Tensor {
  if (!isRecord(value)) throw invalid(`${where} must be an object`);
  const { name, shape, datatype, data, parameters } = value;
  if (typeof name !== 'string' || name.length === 0 || name.length > 256)
    throw invalid(`${where}.name must be a non-empty string`);
  // An own-property check: `in` also finds Object.prototype's `constructor`, `toString`, `__proto__`…
  if (typeof datatype !== 'string' || !Object.hasOwn(V2_TO_ONNX_TYPE, datatype)) {
    throw invalid(`${where}.datatype must be one of ${Object.keys(V2_TO_ONNX_TYPE).join(', ')}`);
  }
  if (
    !Array.isArray(shape) ||
    shape.length > MAX_RANK ||
    !shape.every((dimension) => Number.isSafeInteger(dimension) && dimension >= 0)
  ) {
    throw invalid(`${where}.shape must be at most ${MAX_RANK} non-negative integers`);
  }
  const elements = (shape as number[]).reduce((product, dimension) => product * dimension, 1);
  if (elements > MAX_TENSOR_ELEMENTS)
    throw invalid(`${where} has ${elements} elements; at most ${MAX_TENSOR_ELEMENTS}`);
  if (!Array.isArray(data)) throw invalid(`${where}.data must be an array`);
  const flat = flatten(data, shape as number[], where);
  if (flat.length !== elements)
    throw invalid(
      `${where}.data has ${flat.length} elements but shape [${shape.join(', ')}] needs ${elements}`,
    );
  const isBool = datatype === 'BOOL';
  for (const element of flat) {
    if (isBool ? typeof element !== 'boolean' : typeof element !== 'number' || !Number.isFinite(element)) {
      throw invalid(`${where}.data must hold ${isBool ? 'booleans' : 'finite numbers'}`);
    }
  }
  if (parameters !== undefined && !isRecord(parameters))
    throw invalid(`${where}.parameters must be an object`);
  return {
    name,
    shape: shape as number[],
    datatype: datatype as V2Datatype,
    data: flat as (number | boolean)[],
    ...(parameters === undefined ? {} : { parameters: parameters as Record<string, unknown> }),
  };
}

/**
 * V2 JSON allows flat (row-major) or nested data. Nested data must have exactly the declared shape:
 * a ragged array whose element count happens to match would otherwise be read in the wrong places.
 */
function flatten(data: unknown[], shape: readonly number[], where: string): unknown[] {
  if (!data.some(Array.isArray)) return data;
  const flat: unknown[] = [];
  const ragged = () => invalid(`${where}.data nests differently from shape [${shape.join(', ')}]`);
  // Depth is bounded by the rank (at most MAX_RANK), so the recursion is too.
  const visit = (items: unknown[], depth: number): void => {
    if (depth >= shape.length || items.length !== shape[depth]) throw ragged();
    const inner = depth + 1 < shape.length;
    for (const item of items) {
      if (Array.isArray(item) !== inner) throw ragged();
      if (inner) visit(item as unknown[], depth + 1);
      else flat.push(item);
    }
  };
  visit(data, 0);
  return flat;
}

function toTypedArray(tensor: V2Tensor): ArrayBufferView {
  const data = tensor.data;
  switch (tensor.datatype) {
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

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function invalid(message: string): InferenceError {
  return new InferenceError('ERR_INFERENCE_INPUT_INVALID', message);
}
