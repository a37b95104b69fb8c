/**
 * The Open Inference Protocol's binary tensor data extension (Triton's `binary_tensor_data`): a
 * request or response body is a JSON header of `Inference-Header-Content-Length` bytes followed by
 * the raw tensors, in the order of the tensors that declare `parameters.binary_data_size`. Raw data
 * is little-endian and row-major, BOOL is one byte per element, BYTES is a sequence of elements each
 * prefixed by its length as a little-endian u32, FP16 is IEEE 754 binary16.
 *
 * Everything here reads untrusted bytes: every declared size is checked against shape × element
 * size and against the body before a byte is viewed, and the blobs must cover the body exactly (no
 * gap, no trailing bytes). Tensors are viewed in place where their offset is aligned for their
 * element type; only unaligned ones are copied (blobs carry no padding).
 */
import { InferenceError } from '../errors.ts';

/** Fixed element sizes in bytes; BYTES has none (each element carries its own length). */
export const BINARY_ELEMENT_BYTES = {
  BOOL: 1,
  UINT8: 1,
  INT8: 1,
  UINT16: 2,
  INT16: 2,
  FP16: 2,
  UINT32: 4,
  INT32: 4,
  FP32: 4,
  UINT64: 8,
  INT64: 8,
  FP64: 8,
} as const;

/** A datatype with a fixed element size. */
export type FixedSizeDatatype = keyof typeof BINARY_ELEMENT_BYTES;

/** The binary datatypes: the fixed-size ones and BYTES. */
export type BinaryDatatype = FixedSizeDatatype | 'BYTES';

/** Each BYTES element starts with its length as a little-endian u32. */
export const BYTES_LENGTH_PREFIX = 4;

/** Largest JSON header accepted in a binary body: the header describes tensors, it does not hold them. */
export const MAX_BINARY_HEADER_BYTES = 1024 * 1024;

/** A binary body split into its JSON header (still bytes) and the tensor section behind it. */
export interface BinaryBody {
  readonly header: Uint8Array;
  readonly tensors: Uint8Array;
}

/**
 * Splits a body at `Inference-Header-Content-Length`. The value comes from an HTTP header: it must
 * be a plain decimal integer within the body and within {@link MAX_BINARY_HEADER_BYTES}.
 * @throws {InferenceError} `ERR_INFERENCE_INPUT_INVALID`.
 */
export function splitBinaryBody(body: Uint8Array, headerLength: string | number): BinaryBody {
  const length = typeof headerLength === 'number' ? headerLength : parseHeaderLength(headerLength);
  if (!Number.isSafeInteger(length) || length <= 0)
    throw invalid('Inference-Header-Content-Length must be a positive integer');
  if (length > MAX_BINARY_HEADER_BYTES)
    throw invalid(`the JSON header may hold at most ${MAX_BINARY_HEADER_BYTES} bytes`);
  if (length > body.byteLength)
    throw invalid(`Inference-Header-Content-Length ${length} is beyond the body of ${body.byteLength} bytes`);
  return { header: body.subarray(0, length), tensors: body.subarray(length) };
}

function parseHeaderLength(text: string): number {
  // Digits only: no sign, no spaces, no exponent, no hexadecimal (Number() would take all of them).
  if (!/^[0-9]{1,10}$/.test(text)) throw invalid('Inference-Header-Content-Length must be decimal digits');
  return Number(text);
}

/** One tensor of the binary section, as its JSON header declares it. */
export interface BinaryTensorDeclaration {
  readonly name: string;
  readonly datatype: BinaryDatatype;
  readonly shape: readonly number[];
  /** `parameters.binary_data_size`. */
  readonly byteLength: number;
}

/** Where a declared tensor lies in the binary section. */
export interface BinaryTensorSlice {
  readonly declaration: BinaryTensorDeclaration;
  /** A view of the tensor's bytes inside the section (no copy). */
  readonly bytes: Uint8Array;
}

/**
 * Lays the declared tensors over the binary section in order, checking each declared size against
 * shape × element size (BYTES: against the elements it holds) and that together they cover the
 * section exactly.
 * @throws {InferenceError} `ERR_INFERENCE_INPUT_INVALID`.
 */
export function sliceBinaryTensors(
  declarations: readonly BinaryTensorDeclaration[],
  section: Uint8Array,
): BinaryTensorSlice[] {
  const slices: BinaryTensorSlice[] = [];
  let offset = 0;
  for (const declaration of declarations) {
    const { name, byteLength } = declaration;
    if (!Number.isSafeInteger(byteLength) || byteLength < 0)
      throw invalid(`${describe(name)} binary_data_size must be a non-negative integer`);
    if (byteLength > section.byteLength - offset) {
      throw invalid(
        `${describe(name)} declares ${byteLength} bytes but only ${section.byteLength - offset} remain in the body`,
      );
    }
    const elements = elementCount(declaration.shape);
    const bytes = section.subarray(offset, offset + byteLength);
    if (declaration.datatype === 'BYTES') {
      // Walks the length prefixes; throws when they do not add up to exactly this blob.
      countBytesElements(bytes, elements, name);
    } else {
      const expected = elements * BINARY_ELEMENT_BYTES[declaration.datatype];
      if (byteLength !== expected) {
        throw invalid(
          `${describe(name)} declares ${byteLength} bytes; shape [${declaration.shape.join(', ')}] of ${declaration.datatype} needs ${expected}`,
        );
      }
    }
    slices.push({ declaration, bytes });
    offset += byteLength;
  }
  if (offset !== section.byteLength) {
    throw invalid(`the body has ${section.byteLength - offset} bytes beyond the declared tensors`);
  }
  return slices;
}

/** The product of a shape's dimensions (the caller has bounded rank and dimensions). */
export function elementCount(shape: readonly number[]): number {
  return shape.reduce((product, dimension) => product * dimension, 1);
}

/**
 * The typed array ONNX Runtime takes for a fixed-size tensor's raw bytes: a view in place when the
 * offset is aligned for the element type, else a copy (blobs are packed without padding). FP16
 * comes back as the Uint16Array of its bit patterns, which is what ONNX Runtime takes for float16.
 */
export function typedArrayOf(datatype: FixedSizeDatatype, bytes: Uint8Array): ArrayBufferView {
  const size = BINARY_ELEMENT_BYTES[datatype];
  const source = bytes.byteOffset % size === 0 ? bytes : new Uint8Array(bytes); // the one copy, only when unaligned
  const { buffer, byteOffset } = source;
  const count = source.byteLength / size;
  switch (datatype) {
    case 'BOOL':
    case 'UINT8':
      return new Uint8Array(buffer, byteOffset, count);
    case 'INT8':
      return new Int8Array(buffer, byteOffset, count);
    case 'UINT16':
    case 'FP16':
      return new Uint16Array(buffer, byteOffset, count);
    case 'INT16':
      return new Int16Array(buffer, byteOffset, count);
    case 'UINT32':
      return new Uint32Array(buffer, byteOffset, count);
    case 'INT32':
      return new Int32Array(buffer, byteOffset, count);
    case 'FP32':
      return new Float32Array(buffer, byteOffset, count);
    case 'UINT64':
      return new BigUint64Array(buffer, byteOffset, count);
    case 'INT64':
      return new BigInt64Array(buffer, byteOffset, count);
    case 'FP64':
      return new Float64Array(buffer, byteOffset, count);
  }
}

/**
 * The raw little-endian bytes of a typed array, as a view (no copy). Every platform Node 20 runs
 * nitro-infer on is little-endian, so typed-array memory is already the wire format.
 */
export function rawBytesOf(data: ArrayBufferView): Uint8Array {
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

/**
 * Checks that a BYTES blob holds exactly `expected` length-prefixed elements and nothing else.
 * @throws {InferenceError} `ERR_INFERENCE_INPUT_INVALID`.
 */
export function countBytesElements(bytes: Uint8Array, expected: number, name: string): void {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let offset = 0;
  let count = 0;
  while (offset < bytes.byteLength) {
    if (count === expected) throw invalid(`${describe(name)} holds more BYTES elements than its shape`);
    if (bytes.byteLength - offset < BYTES_LENGTH_PREFIX)
      throw invalid(`${describe(name)} ends inside a BYTES length prefix`);
    const length = view.getUint32(offset, true);
    offset += BYTES_LENGTH_PREFIX;
    if (length > bytes.byteLength - offset)
      throw invalid(`${describe(name)} has a BYTES element running past its blob`);
    offset += length;
    count++;
  }
  if (count !== expected)
    throw invalid(`${describe(name)} holds ${count} BYTES elements; its shape needs ${expected}`);
}

/**
 * Decodes a BYTES blob (already checked by {@link countBytesElements}) into its elements, each a
 * view into the blob.
 */
export function decodeBytesElements(bytes: Uint8Array): Uint8Array[] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const elements: Uint8Array[] = [];
  let offset = 0;
  while (offset + BYTES_LENGTH_PREFIX <= bytes.byteLength) {
    const length = view.getUint32(offset, true);
    offset += BYTES_LENGTH_PREFIX;
    elements.push(bytes.subarray(offset, offset + length));
    offset += length;
  }
  return elements;
}

/** Encodes BYTES elements (text as UTF-8) as length-prefixed bytes. */
export function encodeBytesElements(elements: readonly (string | Uint8Array)[]): Uint8Array {
  const encoded = elements.map((element) =>
    typeof element === 'string' ? new TextEncoder().encode(element) : element,
  );
  const total = encoded.reduce((sum, element) => sum + BYTES_LENGTH_PREFIX + element.byteLength, 0);
  const out = new Uint8Array(total);
  const view = new DataView(out.buffer);
  let offset = 0;
  for (const element of encoded) {
    view.setUint32(offset, element.byteLength, true);
    out.set(element, offset + BYTES_LENGTH_PREFIX);
    offset += BYTES_LENGTH_PREFIX + element.byteLength;
  }
  return out;
}

/**
 * A body in the extension's layout: the JSON header, then each blob in order. Returned as pieces
 * (no concatenation) with the header length the `Inference-Header-Content-Length` header carries.
 */
export function binaryBodyPieces(
  header: unknown,
  blobs: readonly Uint8Array[],
): { readonly pieces: Uint8Array[]; readonly headerLength: number; readonly byteLength: number } {
  const json = new TextEncoder().encode(JSON.stringify(header));
  const byteLength = blobs.reduce((sum, blob) => sum + blob.byteLength, json.byteLength);
  return { pieces: [json, ...blobs], headerLength: json.byteLength, byteLength };
}

// IEEE 754 binary16 ⇄ number. Node 20 has no Float16Array, so JSON requests and responses of FP16
// tensors are converted here; the binary form carries the bit patterns untouched.

/** The number a binary16 bit pattern stands for (exact: every binary16 value is a binary64 value). */
export function float16BitsToNumber(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >> 10) & 0x1f;
  const fraction = bits & 0x3ff;
  if (exponent === 0) return sign * fraction * 2 ** -24; // zero and subnormals
  if (exponent === 0x1f) return fraction === 0 ? sign * Infinity : Number.NaN;
  return sign * (1 + fraction / 1024) * 2 ** (exponent - 15);
}

/**
 * The binary16 bit pattern nearest to `value`: round to nearest, ties to even, straight from the
 * binary64 value (going through binary32 first would round twice); beyond the largest finite
 * value, ±Infinity. Every step below is exact in binary64 (scaling by powers of two).
 */
export function numberToFloat16Bits(value: number): number {
  if (Number.isNaN(value)) return 0x7e00;
  const sign = value < 0 || Object.is(value, -0) ? 0x8000 : 0;
  const magnitude = Math.abs(value);
  // 65520 is halfway between 65504 (the largest finite binary16) and 2^16: ties to even → Infinity.
  if (magnitude >= 65520) return sign | 0x7c00;
  if (magnitude < 2 ** -14) return sign | roundHalfEven(magnitude * 2 ** 24); // subnormal (1024 = smallest normal)
  let exponent = Math.floor(Math.log2(magnitude));
  if (2 ** exponent > magnitude) exponent--;
  if (2 ** (exponent + 1) <= magnitude) exponent++;
  let fraction = roundHalfEven((magnitude / 2 ** exponent - 1) * 1024);
  if (fraction === 1024) {
    fraction = 0;
    exponent++;
  }
  if (exponent + 15 >= 0x1f) return sign | 0x7c00;
  return sign | ((exponent + 15) << 10) | fraction;
}

function roundHalfEven(value: number): number {
  const floor = Math.floor(value);
  const rest = value - floor;
  return rest > 0.5 || (rest === 0.5 && floor % 2 === 1) ? floor + 1 : floor;
}

function describe(name: string): string {
  return `tensor ${JSON.stringify(name.slice(0, 64))}`;
}

function invalid(message: string): InferenceError {
  return new InferenceError('ERR_INFERENCE_INPUT_INVALID', message);
}
