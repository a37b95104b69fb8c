/**
 * The parent ↔ enclave link codec (DESIGN.md 4.5). The layout and its bounds are in
 * `frame-layout.ts`: `u32 frame length | u32 header length | CBOR header | raw payload`.
 * Everything in a frame crosses a trust boundary: the declared lengths are checked as soon as
 * they arrive, the header (the only CBOR) is decoded under a tight cap and shape-checked before
 * the payload is buffered, and the payload is never decoded: handlers get it as a view of the
 * received bytes (one copy only when it spans several socket chunks, none when the decoder is
 * asked for the pieces). A frame that breaks the codec ends the connection.
 */
import { decodeCborMeasured, encodeCborTransient } from './cbor.ts';
import { LinkError, isNitroInferError } from './errors.ts';
import {
  FRAME_LENGTH_BYTES,
  FRAME_PAYLOADS,
  HEADER_LENGTH_BYTES,
  MAX_FRAME_BYTES,
  MAX_FRAME_ID,
  PAYLOAD_KEY,
  REQUEST_HEADER_LIMITS,
} from './frame-layout.ts';
import type { FrameHeaderLimits } from './frame-layout.ts';
import { FrameBuffer, PayloadPieces } from './frame-buffer.ts';

export { MAX_FRAME_BYTES, MAX_FRAME_ID } from './frame-layout.ts';
export { PayloadPieces } from './frame-buffer.ts';

/** Frame types are short ASCII names such as `model.chunk`. */
const TYPE_PATTERN = /^[a-z][a-z0-9.]{0,31}$/;

/** A decoded frame: `id`, `type` and the type's own fields (the payload among them). */
export interface Frame {
  readonly id: number;
  readonly type: string;
  readonly fields: ReadonlyMap<string, unknown>;
  /** Bytes the frame holds: its encoding plus the decoded header's estimate, for back-pressure. */
  readonly byteLength: number;
}

/** An encoded frame: lengths and header, then the payload's pieces when there is one (never copied). */
export type FramePieces = readonly [Buffer, ...Uint8Array[]];

function asPayload(value: unknown): readonly Uint8Array[] | undefined {
  if (value instanceof Uint8Array) return [value];
  if (value instanceof PayloadPieces) return value.pieces;
  return undefined;
}

/**
 * Encodes one frame. `fields` must not contain `id`, `type` or `payload`. When the type may
 * carry a payload ({@link FRAME_PAYLOADS}) and its field holds bytes (or {@link PayloadPieces}),
 * those bytes travel out of band as the pieces after the head, so a writer can send them all with
 * one `writev` and no concatenation; the caller must not change them until the writer has sent them.
 * @throws {LinkError} `ERR_FRAME_TOO_LARGE`, `ERR_FRAME_HEADER_TOO_LARGE` or `ERR_FRAME_PAYLOAD_TOO_LARGE`.
 */
export function encodeFrame(
  id: number,
  type: string,
  fields: Readonly<Record<string, unknown>> = {},
): FramePieces {
  const rule = FRAME_PAYLOADS.get(type);
  const candidate = rule === undefined ? undefined : fields[rule.field];
  const payload = rule === undefined ? undefined : asPayload(candidate);
  const entries: [string, unknown][] = [
    ['id', id],
    ['type', type],
  ];
  if (payload !== undefined) entries.push([PAYLOAD_KEY, rule?.field]);
  for (const [key, value] of Object.entries(fields)) {
    if (payload === undefined || key !== rule?.field) entries.push([key, value]);
  }
  const header = encodeCborTransient(new Map(entries));
  let payloadBytes = 0;
  for (const piece of payload ?? []) payloadBytes += piece.byteLength;
  if (rule !== undefined && payloadBytes > rule.maxBytes) {
    throw new LinkError(
      'ERR_FRAME_PAYLOAD_TOO_LARGE',
      `${type} payload of ${payloadBytes} bytes exceeds ${rule.maxBytes}`,
    );
  }
  const frameLength = HEADER_LENGTH_BYTES + header.byteLength + payloadBytes;
  if (frameLength > MAX_FRAME_BYTES) {
    throw new LinkError('ERR_FRAME_TOO_LARGE', `frame of ${frameLength} bytes exceeds ${MAX_FRAME_BYTES}`);
  }
  const head = Buffer.allocUnsafe(FRAME_LENGTH_BYTES + HEADER_LENGTH_BYTES + header.byteLength);
  head.writeUInt32BE(frameLength, 0);
  head.writeUInt32BE(header.byteLength, FRAME_LENGTH_BYTES);
  head.set(header, FRAME_LENGTH_BYTES + HEADER_LENGTH_BYTES); // the transient header is copied here, once
  return payload === undefined ? [head] : [head, ...payload];
}

/** Options of {@link FrameDecoder}. */
export interface FrameDecoderOptions extends Partial<FrameHeaderLimits> {
  /** Largest frame length accepted; defaults to {@link MAX_FRAME_BYTES}. */
  readonly maxFrameBytes?: number;
  /**
   * Asked once per frame, after its header is checked and before its payload is buffered, with
   * the frame's total bytes. Returning false stops decoding (nothing more is consumed) until the
   * caller pushes again — the link server uses this to wait for room in its shared budget.
   */
  readonly admit?: (frameBytes: number) => boolean;
  /**
   * A payload that spans socket chunks is handed on as {@link PayloadPieces} (views of those
   * chunks, never joined) instead of being copied into one buffer: for a consumer that can write
   * pieces (the parent's OHTTP reply). Its bounds are the same, checked before it is buffered.
   */
  readonly payloadPieces?: boolean;
}

interface PendingHeader {
  readonly id: number;
  readonly type: string;
  readonly fields: Map<string, unknown>;
  readonly payloadField: string | undefined;
  readonly payloadBytes: number;
  readonly decodedBytes: number;
}

/** Splits a byte stream into frames. One decoder per connection. */
export class FrameDecoder {
  readonly #maxFrameBytes: number;
  readonly #limits: FrameHeaderLimits;
  readonly #admit: ((frameBytes: number) => boolean) | undefined;
  readonly #payloadPieces: boolean;
  readonly #buffer = new FrameBuffer();
  #frameLength: number | undefined;
  #headerLength: number | undefined;
  #header: PendingHeader | undefined;
  #admitted = false;
  // A payload that spans socket chunks is copied into this buffer as the chunks arrive, so the
  // chunks are released at once (peak memory one payload, not two).
  #payload: Uint8Array | undefined;
  #payloadFilled = 0;

  constructor(options: FrameDecoderOptions = {}) {
    this.#maxFrameBytes = options.maxFrameBytes ?? MAX_FRAME_BYTES;
    this.#limits = {
      maxHeaderBytes: options.maxHeaderBytes ?? REQUEST_HEADER_LIMITS.maxHeaderBytes,
      maxHeaderItems: options.maxHeaderItems ?? REQUEST_HEADER_LIMITS.maxHeaderItems,
      maxHeaderDecodedBytes: options.maxHeaderDecodedBytes ?? REQUEST_HEADER_LIMITS.maxHeaderDecodedBytes,
    };
    this.#admit = options.admit;
    this.#payloadPieces = options.payloadPieces ?? false;
  }

  /**
   * Feeds bytes (possibly none, to resume after a refused admission); returns the frames they complete.
   * @throws {LinkError} an `ERR_FRAME_*` code; the connection must then close.
   */
  push(chunk: Uint8Array = new Uint8Array(0)): Frame[] {
    this.#buffer.append(chunk);
    const frames: Frame[] = [];
    for (;;) {
      if (this.#frameLength === undefined) {
        if (this.#buffer.length < FRAME_LENGTH_BYTES) return frames;
        const length = this.#buffer.take(FRAME_LENGTH_BYTES).readUInt32BE(0);
        if (length === 0 || length > this.#maxFrameBytes) {
          throw new LinkError(
            'ERR_FRAME_TOO_LARGE',
            `frame length ${length} is outside 1–${this.#maxFrameBytes}`,
          );
        }
        if (length <= HEADER_LENGTH_BYTES) throw new LinkError('ERR_FRAME_MALFORMED', 'frame has no header');
        this.#frameLength = length;
      }
      if (this.#headerLength === undefined) {
        if (this.#buffer.length < HEADER_LENGTH_BYTES) return frames;
        const length = this.#buffer.take(HEADER_LENGTH_BYTES).readUInt32BE(0);
        if (length > this.#limits.maxHeaderBytes) {
          throw new LinkError(
            'ERR_FRAME_HEADER_TOO_LARGE',
            `frame header of ${length} bytes exceeds ${this.#limits.maxHeaderBytes}`,
          );
        }
        if (length === 0 || length > this.#frameLength - HEADER_LENGTH_BYTES) {
          throw new LinkError('ERR_FRAME_MALFORMED', 'frame header length is outside the frame');
        }
        this.#headerLength = length;
      }
      if (this.#header === undefined) {
        if (this.#buffer.length < this.#headerLength) return frames;
        const payloadBytes = this.#frameLength - HEADER_LENGTH_BYTES - this.#headerLength;
        this.#header = parseHeader(this.#buffer.take(this.#headerLength), payloadBytes, this.#limits);
      }
      if (!this.#admitted) {
        if (this.#admit !== undefined && !this.#admit(FRAME_LENGTH_BYTES + this.#frameLength)) return frames;
        this.#admitted = true;
      }
      const header = this.#header;
      if (header.payloadField !== undefined) {
        const payload = this.#takePayload(header.payloadBytes);
        if (payload === undefined) return frames;
        header.fields.set(header.payloadField, payload);
      }
      frames.push({
        id: header.id,
        type: header.type,
        fields: header.fields,
        byteLength: FRAME_LENGTH_BYTES + this.#frameLength + header.decodedBytes,
      });
      this.#frameLength = undefined;
      this.#headerLength = undefined;
      this.#header = undefined;
      this.#admitted = false;
    }
  }

  /**
   * The payload once complete: a view when it lies in one chunk, else one copy (or, with
   * `payloadPieces`, the views of the chunks it spans).
   */
  #takePayload(size: number): Uint8Array | PayloadPieces | undefined {
    if (this.#payload === undefined) {
      if (this.#buffer.length >= size && this.#buffer.contiguous(size)) {
        const view = this.#buffer.take(size);
        // A plain Uint8Array view, as decoded byte strings are: handlers never see a Buffer.
        return new Uint8Array(view.buffer, view.byteOffset, view.byteLength);
      }
      if (this.#payloadPieces) {
        if (this.#buffer.length < size) return undefined;
        const pieces = this.#buffer.takePieces(size);
        return new PayloadPieces(
          pieces.map((piece) => new Uint8Array(piece.buffer, piece.byteOffset, piece.byteLength)),
        );
      }
      // Unzeroed: every byte is written before the payload is handed on.
      const target = Buffer.allocUnsafeSlow(size);
      this.#payload = new Uint8Array(target.buffer, target.byteOffset, size);
      this.#payloadFilled = 0;
    }
    this.#payloadFilled += this.#buffer.moveInto(
      this.#payload,
      this.#payloadFilled,
      size - this.#payloadFilled,
    );
    if (this.#payloadFilled < size) return undefined;
    const payload = this.#payload;
    this.#payload = undefined;
    return payload;
  }

  /** Bytes held for incomplete frames. */
  get bufferedBytes(): number {
    return this.#buffer.length + (this.#payload?.byteLength ?? 0);
  }

  /** True while a frame has begun (some of its bytes arrived) and is not complete. */
  get inFrame(): boolean {
    return this.#frameLength !== undefined || this.#buffer.length > 0;
  }

  /**
   * Declares the end of the stream.
   * @throws {LinkError} `ERR_FRAME_TRUNCATED` when a frame is incomplete.
   */
  end(): void {
    if (this.inFrame) throw new LinkError('ERR_FRAME_TRUNCATED', 'the stream ended inside a frame');
  }
}

/**
 * Decodes and shape-checks one header, and checks the payload its frame carries against
 * {@link FRAME_PAYLOADS} before any payload byte is buffered.
 */
function parseHeader(bytes: Uint8Array, payloadBytes: number, limits: FrameHeaderLimits): PendingHeader {
  let value: unknown;
  let decodedBytes: number;
  try {
    ({ value, decodedBytes } = decodeCborMeasured(bytes, {
      maxBytes: limits.maxHeaderBytes,
      maxDepth: 8,
      maxItems: limits.maxHeaderItems,
      maxDecodedBytes: limits.maxHeaderDecodedBytes,
      direct: true,
    }));
  } catch (error) {
    throw new LinkError(
      'ERR_FRAME_MALFORMED',
      isNitroInferError(error) ? error.message : 'frame header is not CBOR',
      {
        cause: error,
      },
    );
  }
  if (!(value instanceof Map))
    throw new LinkError('ERR_FRAME_MALFORMED', 'a frame header must be a CBOR map');
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
  const declared = fields.get(PAYLOAD_KEY);
  fields.delete('id');
  fields.delete('type');
  fields.delete(PAYLOAD_KEY);
  const rule = FRAME_PAYLOADS.get(type);
  if (declared === undefined) {
    if (payloadBytes > 0)
      throw new LinkError(
        'ERR_FRAME_PAYLOAD_REFUSED',
        `${payloadBytes} undeclared bytes follow the ${type} header`,
      );
    return { id, type, fields, payloadField: undefined, payloadBytes, decodedBytes };
  }
  if (rule === undefined || declared !== rule.field) {
    throw new LinkError('ERR_FRAME_PAYLOAD_REFUSED', `a ${type} frame carries no payload under that name`);
  }
  if (fields.has(rule.field))
    throw new LinkError('ERR_FRAME_MALFORMED', `${type} names its payload field twice`);
  if (payloadBytes > rule.maxBytes) {
    throw new LinkError(
      'ERR_FRAME_PAYLOAD_TOO_LARGE',
      `${type} payload of ${payloadBytes} bytes exceeds ${rule.maxBytes}`,
    );
  }
  return { id, type, fields, payloadField: rule.field, payloadBytes, decodedBytes };
}
