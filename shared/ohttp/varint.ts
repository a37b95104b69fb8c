/**
 * QUIC variable-length integers (RFC 9000 section 16), as Binary HTTP uses them: the two high bits
 * of the first byte give the length (1, 2, 4 or 8 bytes). Values here stay below 2^53.
 */
import { OhttpError } from '../errors.ts';

/** Encodes `value` in the shortest form. */
export function encodeVarint(value: number): Uint8Array {
  if (!Number.isSafeInteger(value) || value < 0) throw new RangeError('varint out of range');
  if (value < 0x40) return Uint8Array.of(value);
  if (value < 0x4000) return Uint8Array.of(0x40 | (value >> 8), value & 0xff);
  if (value < 0x4000_0000) {
    const bytes = new Uint8Array(4);
    new DataView(bytes.buffer).setUint32(0, value | 0x8000_0000);
    return bytes;
  }
  const bytes = new Uint8Array(8);
  new DataView(bytes.buffer).setBigUint64(0, BigInt(value) | 0xc000_0000_0000_0000n);
  return bytes;
}

/** A bounds-checked reader over one buffer. */
export class ByteReader {
  readonly #bytes: Uint8Array;
  readonly #view: DataView;
  offset = 0;

  constructor(bytes: Uint8Array) {
    this.#bytes = bytes;
    this.#view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  get remaining(): number {
    return this.#bytes.byteLength - this.offset;
  }

  /** Reads one varint. */
  varint(): number {
    if (this.remaining < 1) throw malformed('truncated integer');
    const first = this.#bytes[this.offset] as number;
    const length = 1 << (first >> 6);
    if (this.remaining < length) throw malformed('truncated integer');
    let value: number;
    if (length === 1) value = first & 0x3f;
    else if (length === 2) value = this.#view.getUint16(this.offset) & 0x3fff;
    else if (length === 4) value = this.#view.getUint32(this.offset) & 0x3fff_ffff;
    else {
      const big = this.#view.getBigUint64(this.offset) & 0x3fff_ffff_ffff_ffffn;
      if (big > BigInt(Number.MAX_SAFE_INTEGER)) throw malformed('integer too large');
      value = Number(big);
    }
    this.offset += length;
    return value;
  }

  /** Reads `length` bytes (a view, not a copy). */
  bytes(length: number): Uint8Array {
    if (length > this.remaining) throw malformed('truncated field');
    const view = this.#bytes.subarray(this.offset, this.offset + length);
    this.offset += length;
    return view;
  }

  /** A varint length, then that many bytes, at most `max`. */
  lengthPrefixed(max: number): Uint8Array {
    const length = this.varint();
    if (length > max) throw malformed(`field of ${length} bytes exceeds ${max}`);
    return this.bytes(length);
  }

  peekByte(): number | undefined {
    return this.#bytes[this.offset];
  }
}

function malformed(message: string): OhttpError {
  return new OhttpError('ERR_BHTTP_MALFORMED', message);
}
