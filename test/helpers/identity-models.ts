/**
 * Small ONNX models over every V2 datatype, for round trips that must be bit-exact: one Identity
 * per datatype (`x_<DT>` → `y_<DT>`, one dynamic dimension), so a request can carry all of them
 * at once, some as JSON and some as binary tensors.
 */
import { buildOnnxModel } from '../../sim/onnx-builder.ts';
import type { V2Datatype } from '../../shared/inference/v2.ts';

/** ONNX `TensorProto.DataType` of each V2 datatype. */
export const ONNX_ELEMENT_TYPE: Record<V2Datatype, number> = {
  FP32: 1,
  UINT8: 2,
  INT8: 3,
  UINT16: 4,
  INT16: 5,
  INT32: 6,
  INT64: 7,
  BYTES: 8,
  BOOL: 9,
  FP16: 10,
  FP64: 11,
  UINT32: 12,
  UINT64: 13,
};

export const ALL_DATATYPES = Object.keys(ONNX_ELEMENT_TYPE) as V2Datatype[];

/** Identity for each of `datatypes`: input `x_<DT>` [n] → output `y_<DT>` [n]. */
export function identityModel(datatypes: readonly V2Datatype[] = ALL_DATATYPES): Uint8Array {
  return buildOnnxModel({
    name: 'identity',
    nodes: datatypes.map((datatype) => ({
      opType: 'Identity',
      inputs: [`x_${datatype}`],
      outputs: [`y_${datatype}`],
    })),
    inputs: datatypes.map((datatype) => ({
      name: `x_${datatype}`,
      elementType: ONNX_ELEMENT_TYPE[datatype],
      shape: ['n'],
    })),
    outputs: datatypes.map((datatype) => ({
      name: `y_${datatype}`,
      elementType: ONNX_ELEMENT_TYPE[datatype],
      shape: ['n'],
    })),
    initializers: [],
  });
}
