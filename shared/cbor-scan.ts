/**
 * A pre-scan of CBOR heads (RFC 8949 section 3) that runs before any decoder allocates a value.
 *
 * `cbor2` bounds nesting depth but neither the number of items nor the memory the decoded value
 * takes: a 33 MB frame holding an array of 33 million empty maps asks it for ~10 GB of `Map`s
 * (measured below: 195 bytes each) and aborts the process on the heap limit after minutes. This
 * scan walks the encoded heads in one loop (no recursion, so no stack to exhaust), never builds a
 * value, and stops at the first bound exceeded: its cost is one pass over the input and a stack
 * of at most `maxDepth` small entries (plus one per open indefinite-length string).
 *
 * It also checks everything it can see in the heads: truncation, reserved additional-information
 * values, breaks outside indefinite-length items, chunk types inside indefinite strings, declared
 * lengths beyond the input, map keys other than integers or text, floats, and trailing bytes.
 *
 * The decoded-size estimate is conservative: every constant below is 1.5 to 2 times what Node 20
 * (x64) was measured to retain per item after `cbor2` decodes 200,000 of them (heap used after a
 * forced GC), because `cbor2` also holds a container object and a children array per open array
 * or map while it decodes.
 */
import { CborError } from './errors.ts';

/** Bounds of one scan. */
export interface CborScanLimits {
  /** Deepest nesting of arrays, maps and tags. */
  readonly maxDepth: number;
  /** Most data items (every integer, string, array, map, tag and simple value counts one). */
  readonly maxItems: number;
  /** Largest estimate of the memory the decoded value takes, in bytes. */
  readonly maxDecodedBytes: number;
}

/** What a scan found. */
export interface CborScan {
  readonly items: number;
  readonly decodedBytes: number;
}

/** Any item: its slot in the parent (8 bytes) or a heap number (16); measured 10 per integer. */
export const ITEM_COST_BYTES = 16;
/** An array: measured 42 bytes per empty array; cbor2 adds a container and a children array. */
export const ARRAY_COST_BYTES = 96;
/** A `Map`: measured 195 bytes per empty map, plus cbor2's container and entry list. */
export const MAP_COST_BYTES = 400;
/** Each map key or value: measured 37 bytes per int→int entry, plus cbor2's [key, value] triple. */
export const MAP_MEMBER_COST_BYTES = 48;
/** A tag: measured 50 bytes per `Tag`, plus its container. */
export const TAG_COST_BYTES = 128;
/** A byte string is a view of the input: measured 106 bytes per `Uint8Array` view. */
export const BYTES_VIEW_COST_BYTES = 160;
/** A text string: its object, and up to 2 bytes (one UTF-16 unit) per UTF-8 byte. */
export const TEXT_COST_BYTES = 32;

const MT_UNSIGNED = 0;
const MT_NEGATIVE = 1;
const MT_BYTES = 2;
const MT_TEXT = 3;
const MT_ARRAY = 4;
const MT_MAP = 5;
const MT_TAG = 6;
const MT_SIMPLE = 7;
const INDEFINITE = -1;
const BREAK = 0xff;

/**
 * Scans exactly one CBOR item spanning all of `bytes`, within `limits`.
 * @throws {CborError} `ERR_CBOR_MALFORMED`, `ERR_CBOR_FLOAT_REFUSED` or `ERR_CBOR_LIMIT_EXCEEDED`.
 */
export function scanCbor(bytes: Uint8Array, limits: CborScanLimits): CborScan {
  const length = bytes.byteLength;
  // Open containers: major type, items still expected (INDEFINITE until a break) and items seen.
  const types: number[] = [];
  const left: number[] = [];
  const seen: number[] = [];
  let depth = 0; // arrays, maps and tags open; chunked strings do not nest further
  let offset = 0;
  let items = 0;
  let cost = 0;
  let done = false;

  // One item has ended: count it in its parent, closing every parent it completes.
  const finish = () => {
    for (;;) {
      const top = types.length - 1;
      if (top < 0) {
        done = true;
        return;
      }
      seen[top] = (seen[top] as number) + 1;
      if (left[top] === INDEFINITE) return;
      left[top] = (left[top] as number) - 1;
      if (left[top] !== 0) return;
      close();
    }
  };
  const open = (type: number, count: number) => {
    if (type === MT_ARRAY || type === MT_MAP || type === MT_TAG) {
      if (++depth > limits.maxDepth) throw malformed(`CBOR nesting is deeper than ${limits.maxDepth}`);
    }
    types.push(type);
    left.push(count);
    seen.push(0);
  };
  const close = () => {
    const type = types.pop() as number;
    left.pop();
    seen.pop();
    if (type === MT_ARRAY || type === MT_MAP || type === MT_TAG) depth--;
  };

  while (!done) {
    if (offset >= length) throw malformed('CBOR input ends inside an item');
    const initial = bytes[offset++] as number;
    const top = types.length - 1;
    const parent = top < 0 ? undefined : types[top];

    if (initial === BREAK) {
      if (parent === undefined || left[top] !== INDEFINITE)
        throw malformed('CBOR break outside an indefinite item');
      if (parent === MT_MAP && (seen[top] as number) % 2 === 1)
        throw malformed('CBOR map key without a value');
      close();
      if (parent === MT_BYTES || parent === MT_TEXT) cost += stringCost(parent, 0);
      finish();
      continue;
    }

    const type = initial >> 5;
    const info = initial & 0x1f;
    const chunked = parent === MT_BYTES || parent === MT_TEXT;
    if (chunked && (type !== parent || info === 31)) {
      throw malformed('an indefinite CBOR string holds only definite chunks of its own type');
    }
    if (
      parent === MT_MAP &&
      (seen[top] as number) % 2 === 0 &&
      type !== MT_UNSIGNED &&
      type !== MT_NEGATIVE &&
      type !== MT_TEXT &&
      !isFloat(type, info) // a float key is reported as a float, below
    ) {
      throw malformed('CBOR map keys must be integers or text strings');
    }

    let argument: number;
    if (info < 24) argument = info;
    else if (info <= 27) {
      const size = 1 << (info - 24);
      if (offset + size > length) throw malformed('CBOR input ends inside a head');
      argument = readArgument(bytes, offset, size);
      offset += size;
    } else if (info === 31 && type >= MT_BYTES && type <= MT_MAP) argument = INDEFINITE;
    else throw malformed('reserved CBOR additional information');

    if (++items > limits.maxItems) {
      throw new CborError('ERR_CBOR_LIMIT_EXCEEDED', `CBOR input holds more than ${limits.maxItems} items`);
    }
    cost += parent === MT_MAP ? MAP_MEMBER_COST_BYTES : ITEM_COST_BYTES;

    switch (type) {
      case MT_UNSIGNED:
      case MT_NEGATIVE:
        finish();
        break;
      case MT_BYTES:
      case MT_TEXT:
        if (argument === INDEFINITE) {
          open(type, INDEFINITE);
        } else {
          if (argument > length - offset) throw malformed('CBOR string is longer than the input');
          offset += argument;
          // A chunk is copied when the chunks are joined; a definite byte string stays a view.
          cost += chunked
            ? stringCost(type, argument) + argument * (type === MT_TEXT ? 2 : 1)
            : stringCost(type, argument);
          finish();
        }
        break;
      case MT_ARRAY:
      case MT_MAP: {
        cost += type === MT_ARRAY ? ARRAY_COST_BYTES : MAP_COST_BYTES;
        // Every member takes at least one byte: a count beyond the input is refused before use.
        const members = argument === INDEFINITE ? INDEFINITE : type === MT_MAP ? argument * 2 : argument;
        if (members > length - offset)
          throw malformed('CBOR container declares more items than the input holds');
        if (members === 0) {
          if (depth + 1 > limits.maxDepth) throw malformed(`CBOR nesting is deeper than ${limits.maxDepth}`);
          finish();
        } else open(type, members);
        break;
      }
      case MT_TAG:
        cost += TAG_COST_BYTES;
        open(type, 1);
        break;
      case MT_SIMPLE:
        // 25, 26, 27: half, single and double floats; none of our formats has one.
        if (isFloat(type, info))
          throw new CborError('ERR_CBOR_FLOAT_REFUSED', 'CBOR floats are not accepted');
        if (info === 24 && argument < 32) throw malformed('CBOR simple value in a two-byte form below 32');
        finish();
        break;
    }
    if (cost > limits.maxDecodedBytes) {
      throw new CborError(
        'ERR_CBOR_LIMIT_EXCEEDED',
        `decoding this CBOR input would take more than ${limits.maxDecodedBytes} bytes`,
      );
    }
  }
  if (offset !== length) throw malformed(`${length - offset} bytes follow the CBOR item`);
  return { items, decodedBytes: cost };
}

function isFloat(type: number, info: number): boolean {
  return type === MT_SIMPLE && info >= 25 && info <= 27;
}

function stringCost(type: number, byteLength: number): number {
  return type === MT_TEXT ? TEXT_COST_BYTES + 2 * byteLength : BYTES_VIEW_COST_BYTES;
}

/** A head's argument; 8-byte values beyond 2^53 lose precision, but only compare as "too large". */
function readArgument(bytes: Uint8Array, offset: number, size: number): number {
  let value = 0;
  for (let index = 0; index < size; index++) value = value * 256 + (bytes[offset + index] as number);
  return value;
}

function malformed(message: string): CborError {
  return new CborError('ERR_CBOR_MALFORMED', message);
}
