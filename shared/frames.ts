/**
 * The parent ↔ enclave link codec (DESIGN.md 4.5): length-prefixed frames `u32 length | CBOR map`,
 * each map carrying at least `id` (request id, echoed by the response) and `type`. Everything in a
 * frame crosses a trust boundary: the declared length is checked before any byte is buffered, and
 * the map's shape before any field is used. A frame that breaks the codec ends the connection.
 */
import { decodeCbor, encodeCborTransient } from './cbor.ts';
import { LinkError, isNitroInferError } from './errors.ts';

/** Largest frame: a model chunk (1 MiB) or an inference body, with generous room. */
export const MAX_FRAME_BYTES = 64 * 1024 * 1024;

/**
 * Most CBOR items in a frame: the largest, a `status` answer listing every model with its tensor
 * metadata, stays far below; a hostile frame of millions of empty maps is refused before decoding.
 * Decoded size: each item at most a map with its entry (448 bytes, `cbor-scan.ts`), and the
 * frame's strings joined at most once more (2 × the frame).
 */
export const MAX_FRAME_ITEMS = 64 * 1024;

/** Each frame starts with its length as a big-endian u32. */
export const FRAME_HEADER_BYTES = 4;

/** Request ids are u32; 0 is reserved for frames that answer nothing (connection-level errors). */
export const MAX_FRAME_ID = 0xffff_ffff;

/** Frame types are short ASCII names such as `model.chunk`. */
const TYPE_PATTERN = /^[a-z][a-z0-9.]{0,31}$/;

/** A decoded frame: `id`, `type` and the type's own fields. */
export interface Frame {
  readonly id: number;
  readonly type: string;
  readonly fields: ReadonlyMap<string, unknown>;
  /** Size of the encoded body, for byte-based back-pressure. */
  readonly byteLength: number;
}

/** Encodes one frame. `fields` must not contain `id` or `type`. */
export function encodeFrame(
  id: number,
  type: string,
  fields: Readonly<Record<string, unknown>> = {},
): Buffer {
  const body = encodeCborTransient(
    new Map<string, unknown>([['id', id], ['type', type], ...Object.entries(fields)]),
  );
  if (body.byteLength > MAX_FRAME_BYTES)
    throw new LinkError(
      'ERR_FRAME_TOO_LARGE',
      `frame of ${body.byteLength} bytes exceeds ${MAX_FRAME_BYTES}`,
    );
  const frame = Buffer.allocUnsafe(FRAME_HEADER_BYTES + body.byteLength);
  frame.writeUInt32BE(body.byteLength, 0);
  frame.set(body, FRAME_HEADER_BYTES);
  return frame;
}

/** Splits a byte stream into frames. One decoder per connection. */
export class FrameDecoder {
  readonly #maxFrameBytes: number;
  #chunks: Buffer[] = [];
  #buffered = 0;
  #expected: number | undefined;

  constructor(maxFrameBytes: number = MAX_FRAME_BYTES) {
    this.#maxFrameBytes = maxFrameBytes;
  }

  /**
   * Feeds bytes; returns the frames they complete.
   * @throws {LinkError} `ERR_FRAME_TOO_LARGE` or `ERR_FRAME_MALFORMED`; the connection must then close.
   */
  push(chunk: Uint8Array): Frame[] {
    this.#chunks.push(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength));
    this.#buffered += chunk.byteLength;
    const frames: Frame[] = [];
    for (;;) {
      if (this.#expected === undefined) {
        if (this.#buffered < FRAME_HEADER_BYTES) return frames;
        const length = this.#take(FRAME_HEADER_BYTES).readUInt32BE(0);
        if (length === 0 || length > this.#maxFrameBytes) {
          throw new LinkError(
            'ERR_FRAME_TOO_LARGE',
            `frame length ${length} is outside 1–${this.#maxFrameBytes}`,
          );
        }
        this.#expected = length;
      }
      if (this.#buffered < this.#expected) return frames;
      const body = this.#take(this.#expected);
      this.#expected = undefined;
      frames.push(parseFrame(body, this.#maxFrameBytes));
    }
  }

  /** Bytes held for an incomplete frame. */
  get bufferedBytes(): number {
    return this.#buffered;
  }

  #take(count: number): Buffer {
    const first = this.#chunks[0] as Buffer;
    let result: Buffer;
    if (first.byteLength >= count) {
      result = first.subarray(0, count);
      if (first.byteLength === count) this.#chunks.shift();
      else this.#chunks[0] = first.subarray(count);
    } else {
      // Join only the chunks this frame spans: joining everything buffered would copy the
      // frames behind it again for every frame (quadratic when many large frames are queued).
      let spanned = 0;
      let chunkCount = 0;
      while (spanned < count) spanned += (this.#chunks[chunkCount++] as Buffer).byteLength;
      const joined = Buffer.concat(this.#chunks.slice(0, chunkCount), spanned);
      result = joined.subarray(0, count);
      this.#chunks =
        spanned > count
          ? [joined.subarray(count), ...this.#chunks.slice(chunkCount)]
          : this.#chunks.slice(chunkCount);
    }
    this.#buffered -= count;
    return result;
  }
}

/**
 * Decodes and shape-checks one frame body.
 * @throws {LinkError} `ERR_FRAME_MALFORMED`.
 */
export function parseFrame(body: Uint8Array, maxFrameBytes: number = MAX_FRAME_BYTES): Frame {
  let value: unknown;
  try {
    value = decodeCbor(body, {
      maxBytes: maxFrameBytes,
      maxDepth: 8,
      maxItems: MAX_FRAME_ITEMS,
      maxDecodedBytes: MAX_FRAME_ITEMS * 448 + 2 * maxFrameBytes,
    });
  } catch (error) {
    throw new LinkError(
      'ERR_FRAME_MALFORMED',
      isNitroInferError(error) ? error.message : 'frame is not CBOR',
    );
  }
  if (!(value instanceof Map)) throw new LinkError('ERR_FRAME_MALFORMED', 'a frame must be a CBOR map');
  const fields = new Map<string, unknown>();
  for (const [key, field] of value as Map<unknown, unknown>) {
    if (typeof key !== 'string' || key.length > 64)
      throw new LinkError('ERR_FRAME_MALFORMED', 'frame keys must be short text strings');
    fields.set(key, field);
  }
  const id = fields.get('id');
  const type = fields.get('type');
  if (typeof id !== 'number' || !Number.isInteger(id) || id < 0 || id > MAX_FRAME_ID) {
    throw new LinkError('ERR_FRAME_MALFORMED', 'frame id must be a u32');
  }
  if (typeof type !== 'string' || !TYPE_PATTERN.test(type))
    throw new LinkError('ERR_FRAME_MALFORMED', 'frame type must be a short name');
  fields.delete('id');
  fields.delete('type');
  return { id, type, fields, byteLength: body.byteLength };
}
