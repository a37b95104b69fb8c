/**
 * Open Inference Protocol v2 (KServe / Triton) JSON types, and their strict validation: requests
 * come from clients through the parent and are bounded and checked before a tensor is built.
 * Tensors are converted to the flat typed arrays ONNX Runtime takes, and back, in v2-tensors.ts.
 * A request may carry some tensors in the binary tensor data extension (binary-tensor.ts): their
 * JSON header declares `parameters.binary_data_size` and their bytes follow the header.
 */
import { InferenceError } from '../errors.ts';
import { sliceBinaryTensors } from './binary-tensor.ts';
import type { BinaryTensorDeclaration } from './binary-tensor.ts';

/**
 * The protocol extensions the server metadata (`GET /v2`) lists. One constant so the gateway that
 * serves the extension and the route that advertises it cannot disagree.
 */
export const SERVER_EXTENSIONS = ['binary_tensor_data'] as const;

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
  FP16: 'float16',
  FP32: 'float32',
  FP64: 'float64',
  // ONNX Runtime's string tensors: BYTES elements must be UTF-8 (they become JS strings).
  BYTES: 'string',
} as const;

/** A V2 datatype. */
export type V2Datatype = keyof typeof V2_TO_ONNX_TYPE;

/** ONNX Runtime tensor types nitro-infer maps. */
export type OnnxTensorType = (typeof V2_TO_ONNX_TYPE)[V2Datatype];

/** `GET /v2` server metadata: the name and version of this server. */
export const SERVER_NAME = 'nitro-infer';
/** The package version (a unit test keeps it equal to package.json's). */
export const SERVER_VERSION = '0.1.0';
/** Request-level parameters the server acts on itself; every other one is echoed in the response. */
export const SERVER_PARAMETERS: ReadonlySet<string> = new Set(['binary_data_output']);

/** Most inputs one request may carry. */
export const MAX_INPUTS = 64;
/** Most dimensions of one tensor. */
export const MAX_RANK = 8;
/** Most elements of one input tensor (64 Mi; 256 MiB as FP32, below the link's frame bound). */
export const MAX_TENSOR_ELEMENTS = 64 * 1024 * 1024;
/**
 * Most BYTES elements in one request, over all its inputs. Each element becomes a JS string (and a
 * copy in ONNX Runtime) costing ~100 bytes beyond its content, so 4 bytes on the wire (an empty
 * element) would otherwise cost ~25x in the enclave: 8 Mi empty elements in a 32 MiB body, about
 * 1 GiB of heap per request.
 */
export const MAX_BYTES_ELEMENTS = 1024 * 1024;

/** Elements of a tensor in JSON form (BYTES as strings, FP16 as numbers). */
export type V2TensorData = readonly (number | boolean | string)[];

/** A tensor in V2 form. */
export interface V2Tensor {
  readonly name: string;
  readonly shape: readonly number[];
  readonly datatype: V2Datatype;
  /** The elements in JSON form; empty when the tensor travels as `binary`. */
  readonly data: V2TensorData;
  readonly parameters?: Readonly<Record<string, unknown>>;
  /**
   * The tensor's raw bytes in the binary extension's layout (a view into the body, checked against
   * the shape), when it travels in the binary section instead of `data`.
   */
  readonly binary?: Uint8Array;
}

/** A requested output; `parameters.binary_data` asks for it in the binary section. */
export interface V2RequestedOutput {
  readonly name: string;
  readonly parameters?: Readonly<Record<string, unknown>>;
}

/** `POST /v2/models/{name}/infer` body. */
export interface V2InferenceRequest {
  readonly id?: string;
  readonly parameters?: Readonly<Record<string, unknown>>;
  readonly inputs: readonly V2Tensor[];
  readonly outputs?: readonly V2RequestedOutput[];
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
  /** Typed array for numeric types (FP16 as its Uint16Array bit patterns), strings for BYTES. */
  readonly data: ArrayBufferView | readonly string[];
}

/**
 * Validates an untrusted V2 request body (already JSON-parsed). `binarySection` is what followed the
 * JSON header of a binary body: the inputs that declare `binary_data_size` are laid over it in
 * order, and it must hold exactly them.
 * @throws {InferenceError} `ERR_INFERENCE_INPUT_INVALID`.
 */
export function parseInferenceRequest(body: unknown, binarySection?: Uint8Array): V2InferenceRequest {
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
  if (body.parameters !== undefined) booleanParameter(body.parameters, 'binary_data_output', 'parameters');
  const parsed = body.inputs.map((input: unknown, index) => parseTensor(input, `inputs[${index}]`));
  const names = new Set(parsed.map((input) => input.name));
  if (names.size !== parsed.length) throw invalid('input names must be unique');
  // Counted from the shapes, before a BYTES blob (or JSON string array) is decoded.
  const strings = parsed
    .filter((input) => input.datatype === 'BYTES')
    .reduce((sum, input) => sum + input.shape.reduce((product, dimension) => product * dimension, 1), 0);
  if (strings > MAX_BYTES_ELEMENTS)
    throw invalid(`the request holds ${strings} BYTES elements; at most ${MAX_BYTES_ELEMENTS}`);
  const inputs = attachBinary(parsed, binarySection);
  let outputs: V2RequestedOutput[] | undefined;
  if (body.outputs !== undefined) {
    if (!Array.isArray(body.outputs) || body.outputs.length > MAX_INPUTS)
      throw invalid('outputs must be an array');
    outputs = body.outputs.map((output: unknown, index) => {
      if (!isRecord(output) || typeof output.name !== 'string' || output.name.length === 0)
        throw invalid('each requested output needs a name');
      if (output.parameters === undefined) return { name: output.name };
      if (!isRecord(output.parameters)) throw invalid(`outputs[${index}].parameters must be an object`);
      booleanParameter(output.parameters, 'binary_data', `outputs[${index}].parameters`);
      return { name: output.name, parameters: output.parameters };
    });
  }
  return {
    inputs,
    ...(body.id === undefined ? {} : { id: body.id as string }),
    ...(body.parameters === undefined ? {} : { parameters: body.parameters as Record<string, unknown> }),
    ...(outputs === undefined ? {} : { outputs }),
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
  if (parameters !== undefined && !isRecord(parameters))
    throw invalid(`${where}.parameters must be an object`);
  if (parameters?.binary_data_size !== undefined) {
    // Its bytes are in the binary section (attachBinary lays them over it); JSON data beside them
    // would be a second, contradicting copy of the tensor.
    if (data !== undefined) throw invalid(`${where} declares binary_data_size and also carries data`);
    return {
      name,
      shape: shape as number[],
      datatype: datatype as V2Datatype,
      data: [],
      parameters: parameters as Record<string, unknown>,
    };
  }
  if (!Array.isArray(data)) throw invalid(`${where}.data must be an array`);
  const flat = flatten(data, shape as number[], where);
  if (flat.length !== elements)
    throw invalid(
      `${where}.data has ${flat.length} elements but shape [${shape.join(', ')}] needs ${elements}`,
    );
  const kind = datatype === 'BOOL' ? 'boolean' : datatype === 'BYTES' ? 'string' : 'number';
  for (const element of flat) {
    if (typeof element !== kind || (kind === 'number' && !Number.isFinite(element))) {
      throw invalid(`${where}.data must hold ${kind === 'number' ? 'finite numbers' : `${kind}s`}`);
    }
  }
  return {
    name,
    shape: shape as number[],
    datatype: datatype as V2Datatype,
    data: flat as (number | boolean | string)[],
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

/**
 * Lays the inputs that declare `binary_data_size` over the binary section, in order; the section
 * must hold exactly them (a JSON body has none, and then no input may declare one).
 */
function attachBinary(inputs: V2Tensor[], section: Uint8Array | undefined): V2Tensor[] {
  const declared = inputs.filter((input) => input.parameters?.binary_data_size !== undefined);
  if (section === undefined) {
    if (declared.length > 0)
      throw invalid('an input declares binary_data_size but the body has no Inference-Header-Content-Length');
    return inputs;
  }
  const declarations: BinaryTensorDeclaration[] = declared.map((input) => ({
    name: input.name,
    datatype: input.datatype,
    shape: input.shape,
    byteLength: input.parameters?.binary_data_size as number,
  }));
  const slices = new Map(
    sliceBinaryTensors(declarations, section).map((slice) => [slice.declaration.name, slice.bytes]),
  );
  return inputs.map((input) => {
    const binary = slices.get(input.name);
    return binary === undefined ? input : { ...input, binary };
  });
}

function booleanParameter(parameters: Record<string, unknown>, key: string, where: string): void {
  if (parameters[key] !== undefined && typeof parameters[key] !== 'boolean')
    throw invalid(`${where}.${key} must be a boolean`);
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function invalid(message: string): InferenceError {
  return new InferenceError('ERR_INFERENCE_INPUT_INVALID', message);
}
