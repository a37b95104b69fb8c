/**
 * The bounds of a link frame (DESIGN.md 4.5, docs/protocols.md "Link frames"):
 *
 *   u32 frame length | u32 header length | CBOR header {id, type, [payload], …fields} | payload
 *
 * Both lengths are big-endian. The frame length counts everything after itself (the header
 * length, the header and the payload). The header is the only part that is CBOR-decoded, under a
 * tight cap; the payload is raw bytes, declared in the header by the field name under which
 * handlers see it (`payload: 'body'`), and only types listed in {@link FRAME_PAYLOADS} may carry
 * one, each up to its own bound. Everything here is checked before the bytes it governs are
 * buffered.
 */

/** Largest frame: a 32 MiB OHTTP body or inference response with generous room. */
export const MAX_FRAME_BYTES = 64 * 1024 * 1024;

/** Each frame starts with its length as a big-endian u32. */
export const FRAME_LENGTH_BYTES = 4;

/** The header length that follows, a big-endian u32. */
export const HEADER_LENGTH_BYTES = 4;

/** Request ids are u32; 0 is reserved for frames that answer nothing (connection-level errors). */
export const MAX_FRAME_ID = 0xffff_ffff;

/** The header key that names the out-of-band field. */
export const PAYLOAD_KEY = 'payload';

/** Bounds of a frame header: bytes, then CBOR items and decoded size (`cbor-scan.ts`). */
export interface FrameHeaderLimits {
  readonly maxHeaderBytes: number;
  readonly maxHeaderItems: number;
  readonly maxHeaderDecodedBytes: number;
}

/**
 * Headers of requests the enclave reads from the parent. The largest is `credentials`: an STS
 * session token (~1–2 KB from IMDS; AWS documents no fixed size, so 4× room) and three short
 * fields: 16 KiB. Items: `credentials` has 5 fields plus id and type (14 items); 64 leaves room.
 * Decoded: the map (400) + 63 members (63 × 48) + 16 KiB of text as UTF-16 (32 KiB) ≈ 36 KiB,
 * under 64 KiB even when the text arrives in chunks joined once more.
 */
export const REQUEST_HEADER_LIMITS: FrameHeaderLimits = Object.freeze({
  maxHeaderBytes: 16 * 1024,
  maxHeaderItems: 64,
  maxHeaderDecodedBytes: 64 * 1024,
});

/**
 * Headers of responses the parent reads from the enclave (the enclave is trusted; the bound only
 * keeps a bug from exhausting the parent). The largest are `attest` (a ≤ 16 KiB document, key
 * config, receipt key and the model list) and `status` (every model with its tensor metadata):
 * 1 MiB and 64 Ki items cover thousands of models; decoded ≤ 64 Ki × 448 + 4 MiB ≈ 32 MiB.
 */
export const RESPONSE_HEADER_LIMITS: FrameHeaderLimits = Object.freeze({
  maxHeaderBytes: 1024 * 1024,
  maxHeaderItems: 64 * 1024,
  maxHeaderDecodedBytes: 32 * 1024 * 1024,
});

/** An OHTTP-encapsulated 32 MiB inference body: the body plus HPKE's enc, header and tag (< 100 bytes). */
export const MAX_OHTTP_PAYLOAD_BYTES = 32 * 1024 * 1024 + 4096;

/** A model ciphertext chunk; the enclave's `model.chunk` handler allows up to 4 MiB. */
export const MAX_MODEL_CHUNK_PAYLOAD_BYTES = 4 * 1024 * 1024;

/** Which frame types may carry an out-of-band payload, under which field, and how large. */
export interface FramePayloadRule {
  readonly field: string;
  readonly maxBytes: number;
}

/**
 * The one table of payload-carrying types. Every other type carries none: a payload declared or
 * present for it is refused before it is buffered.
 */
export const FRAME_PAYLOADS: ReadonlyMap<string, FramePayloadRule> = new Map([
  ['ohttp', { field: 'body', maxBytes: MAX_OHTTP_PAYLOAD_BYTES }],
  ['infer', { field: 'body', maxBytes: MAX_OHTTP_PAYLOAD_BYTES }],
  ['model.chunk', { field: 'data', maxBytes: MAX_MODEL_CHUNK_PAYLOAD_BYTES }],
  // Responses: an OHTTP response (padded) or a plaintext inference answer.
  ['ok', { field: 'body', maxBytes: MAX_FRAME_BYTES - HEADER_LENGTH_BYTES - 1 }],
]);
