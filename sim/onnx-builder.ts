/**
 * Writes small ONNX models (protobuf `ModelProto`, onnx.proto3) without any download: the example
 * model of the local stack, the models tests seal with canary weights, and large models for the
 * unseal benchmark. Only the fields these models use are written.
 */

/** ONNX `TensorProto.DataType` values used here. */
export const ONNX_TYPE = { FLOAT: 1, INT64: 7 } as const;

/** A dimension: a fixed size or a symbolic (dynamic) name. */
export type Dimension = number | string;

/** A graph input or output. */
export interface ValueInfo {
  readonly name: string;
  readonly elementType: number;
  readonly shape: readonly Dimension[];
}

/** A constant tensor stored in the model. */
export interface Initializer {
  readonly name: string;
  readonly dims: readonly number[];
  readonly data: Float32Array;
}

/** One operator. */
export interface Node {
  readonly opType: string;
  readonly inputs: readonly string[];
  readonly outputs: readonly string[];
}

/** A whole model. */
export interface OnnxModel {
  readonly name: string;
  readonly nodes: readonly Node[];
  readonly inputs: readonly ValueInfo[];
  readonly outputs: readonly ValueInfo[];
  readonly initializers: readonly Initializer[];
  /** Default 13. */
  readonly opset?: number;
}

/** Serializes `model` as ONNX protobuf bytes. */
export function buildOnnxModel(model: OnnxModel): Uint8Array {
  const graph = concat([
    ...model.nodes.map((node) => field(1, message(encodeNode(node)))),
    field(2, text(model.name)),
    ...model.initializers.map((initializer) => field(5, message(encodeInitializer(initializer)))),
    ...model.inputs.map((input) => field(11, message(encodeValueInfo(input)))),
    ...model.outputs.map((output) => field(12, message(encodeValueInfo(output)))),
  ]);
  return concat([
    varintField(1, 8), // ir_version 8 (ONNX 1.10+)
    field(2, text('nitro-infer')), // producer_name
    field(7, message(graph)),
    field(8, message(concat([field(1, text('')), varintField(2, model.opset ?? 13)]))),
  ]);
}

/**
 * `Y = X · W + B`, a dense layer with a dynamic batch dimension: X [batch, inputs] → Y [batch, outputs].
 * Weights are given row-major ([inputs, outputs]).
 */
export function denseLayerModel(name: string, weights: Float32Array, bias: Float32Array): Uint8Array {
  const outputs = bias.length;
  const inputs = weights.length / outputs;
  if (!Number.isInteger(inputs)) throw new RangeError('weights must be inputs × outputs');
  return buildOnnxModel({
    name,
    nodes: [
      { opType: 'MatMul', inputs: ['X', 'W'], outputs: ['XW'] },
      { opType: 'Add', inputs: ['XW', 'B'], outputs: ['Y'] },
    ],
    inputs: [{ name: 'X', elementType: ONNX_TYPE.FLOAT, shape: ['batch', inputs] }],
    outputs: [{ name: 'Y', elementType: ONNX_TYPE.FLOAT, shape: ['batch', outputs] }],
    initializers: [
      { name: 'W', dims: [inputs, outputs], data: weights },
      { name: 'B', dims: [outputs], data: bias },
    ],
  });
}

function encodeNode(node: Node): Uint8Array {
  return concat([
    ...node.inputs.map((input) => field(1, text(input))),
    ...node.outputs.map((output) => field(2, text(output))),
    field(4, text(node.opType)),
  ]);
}

function encodeInitializer(initializer: Initializer): Uint8Array {
  return concat([
    ...initializer.dims.map((dim) => varintField(1, dim)),
    varintField(2, ONNX_TYPE.FLOAT),
    field(8, text(initializer.name)),
    field(
      9,
      new Uint8Array(initializer.data.buffer, initializer.data.byteOffset, initializer.data.byteLength),
    ),
  ]);
}

function encodeValueInfo(value: ValueInfo): Uint8Array {
  const dims = value.shape.map((dim) =>
    field(1, message(typeof dim === 'number' ? varintField(1, dim) : field(2, text(dim)))),
  );
  const tensorType = concat([varintField(1, value.elementType), field(2, message(concat(dims)))]);
  return concat([field(1, text(value.name)), field(2, message(field(1, message(tensorType))))]);
}

/** A length-delimited field (wire type 2). */
function field(number: number, payload: Uint8Array): Uint8Array {
  return concat([varint((number << 3) | 2), varint(payload.byteLength), payload]);
}

/** A varint field (wire type 0). */
function varintField(number: number, value: number): Uint8Array {
  return concat([varint(number << 3), varint(value)]);
}

function message(bytes: Uint8Array): Uint8Array {
  return bytes;
}

function text(value: string): Uint8Array {
  return new TextEncoder().encode(value);
}

function varint(value: number): Uint8Array {
  const bytes: number[] = [];
  let remaining = value;
  while (remaining >= 0x80) {
    bytes.push((remaining % 0x80) | 0x80);
    remaining = Math.floor(remaining / 0x80);
  }
  bytes.push(remaining);
  return new Uint8Array(bytes);
}

function concat(parts: readonly Uint8Array[]): Uint8Array {
  return new Uint8Array(Buffer.concat(parts));
}
