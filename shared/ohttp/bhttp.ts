/**
 * Binary HTTP (RFC 9292): the inner messages of Oblivious HTTP. Decodes known-length (framing 0/1)
 * and indeterminate-length (2/3) messages, including truncation (section 3.8: absent trailing
 * sections are empty) and zero padding (section 3.8); encodes known-length only, which is what
 * nitro-infer sends. Everything decoded is untrusted: every length is checked against what remains
 * and against named caps before it is read.
 */
import { OhttpError } from '../errors.ts';
import { ByteReader, encodeVarint } from './varint.ts';

/** A header or trailer field: name (lowercase) and value. */
export type Field = readonly [name: string, value: string];

/** A request's control data, fields, content and trailers. */
export interface BhttpRequest {
  readonly method: string;
  readonly scheme: string;
  readonly authority: string;
  readonly path: string;
  readonly headers: readonly Field[];
  readonly content: Uint8Array;
  readonly trailers: readonly Field[];
}

/** An informational (1xx) response. */
export interface InformationalResponse {
  readonly status: number;
  readonly headers: readonly Field[];
}

/** A response: informational responses, then the final status, fields, content and trailers. */
export interface BhttpResponse {
  readonly informational: readonly InformationalResponse[];
  readonly status: number;
  readonly headers: readonly Field[];
  readonly content: Uint8Array;
  readonly trailers: readonly Field[];
}

/** Largest message decoded: an inference body (32 MiB) with room for fields. */
export const MAX_BHTTP_MESSAGE_BYTES = 33 * 1024 * 1024;
/** Largest field section: 64 KiB, as common HTTP servers allow. */
export const MAX_FIELD_SECTION_BYTES = 64 * 1024;
/** Largest control-data string (method, scheme, authority, path). */
export const MAX_CONTROL_BYTES = 8 * 1024;
/** Most informational responses before the final one. */
export const MAX_INFORMATIONAL_RESPONSES = 8;

const FRAMING = {
  KNOWN_REQUEST: 0,
  KNOWN_RESPONSE: 1,
  INDETERMINATE_REQUEST: 2,
  INDETERMINATE_RESPONSE: 3,
} as const;
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const utf8 = new TextDecoder('utf-8', { fatal: true });
const encoder = new TextEncoder();

function malformed(message: string): OhttpError {
  return new OhttpError('ERR_BHTTP_MALFORMED', message);
}

function text(bytes: Uint8Array, what: string): string {
  try {
    return utf8.decode(bytes);
  } catch {
    throw malformed(`${what} is not UTF-8`);
  }
}

/** Decodes a request (framing 0 or 2). */
export function decodeBhttpRequest(bytes: Uint8Array): BhttpRequest {
  if (bytes.byteLength > MAX_BHTTP_MESSAGE_BYTES) throw malformed('message too large');
  const reader = new ByteReader(bytes);
  const framing = reader.varint();
  if (framing !== FRAMING.KNOWN_REQUEST && framing !== FRAMING.INDETERMINATE_REQUEST) {
    throw malformed(`framing indicator ${framing} is not a request`);
  }
  const known = framing === FRAMING.KNOWN_REQUEST;
  const method = text(reader.lengthPrefixed(MAX_CONTROL_BYTES), 'method');
  if (!TOKEN.test(method)) throw malformed('method is not a token');
  const scheme = text(reader.lengthPrefixed(MAX_CONTROL_BYTES), 'scheme');
  const authority = text(reader.lengthPrefixed(MAX_CONTROL_BYTES), 'authority');
  const path = text(reader.lengthPrefixed(MAX_CONTROL_BYTES), 'path');
  const rest = readSections(reader, known);
  return { method, scheme, authority, path, ...rest };
}

/** Decodes a response (framing 1 or 3). */
export function decodeBhttpResponse(bytes: Uint8Array): BhttpResponse {
  if (bytes.byteLength > MAX_BHTTP_MESSAGE_BYTES) throw malformed('message too large');
  const reader = new ByteReader(bytes);
  const framing = reader.varint();
  if (framing !== FRAMING.KNOWN_RESPONSE && framing !== FRAMING.INDETERMINATE_RESPONSE) {
    throw malformed(`framing indicator ${framing} is not a response`);
  }
  const known = framing === FRAMING.KNOWN_RESPONSE;
  const informational: InformationalResponse[] = [];
  for (;;) {
    const status = reader.varint();
    if (status < 100 || status > 599) throw malformed(`status ${status} is out of range`);
    if (status >= 200) {
      const rest = readSections(reader, known);
      return { informational, status, ...rest };
    }
    if (informational.length === MAX_INFORMATIONAL_RESPONSES)
      throw malformed('too many informational responses');
    informational.push({ status, headers: readFields(reader, known) });
  }
}

/** Header section, content, trailer section, then only zero padding. Absent sections are empty. */
function readSections(reader: ByteReader, known: boolean) {
  const headers = reader.remaining === 0 ? [] : readFields(reader, known);
  const content = reader.remaining === 0 ? new Uint8Array(0) : readContent(reader, known);
  const trailers = reader.remaining === 0 ? [] : readFields(reader, known);
  const padding = reader.bytes(reader.remaining);
  if (padding.some((byte) => byte !== 0)) throw malformed('non-zero bytes after the message');
  return { headers, content, trailers };
}

function readFields(reader: ByteReader, known: boolean): Field[] {
  const fields: Field[] = [];
  if (known) {
    const section = new ByteReader(reader.lengthPrefixed(MAX_FIELD_SECTION_BYTES));
    while (section.remaining > 0) fields.push(readField(section));
    return fields;
  }
  const start = reader.offset;
  for (;;) {
    if (reader.offset - start > MAX_FIELD_SECTION_BYTES) throw malformed('field section too large');
    if (reader.peekByte() === 0) {
      reader.varint();
      return fields;
    }
    if (reader.remaining === 0) throw malformed('unterminated field section');
    fields.push(readField(reader));
  }
}

function readField(reader: ByteReader): Field {
  const name = text(reader.lengthPrefixed(MAX_FIELD_SECTION_BYTES), 'field name');
  if (!TOKEN.test(name) || name !== name.toLowerCase()) throw malformed('field names are lowercase tokens');
  const value = text(reader.lengthPrefixed(MAX_FIELD_SECTION_BYTES), 'field value');
  return [name, value];
}

function readContent(reader: ByteReader, known: boolean): Uint8Array {
  if (known) return reader.lengthPrefixed(MAX_BHTTP_MESSAGE_BYTES);
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const chunk = reader.lengthPrefixed(MAX_BHTTP_MESSAGE_BYTES);
    if (chunk.byteLength === 0) break;
    total += chunk.byteLength;
    if (total > MAX_BHTTP_MESSAGE_BYTES) throw malformed('content too large');
    chunks.push(chunk);
  }
  if (chunks.length === 1) return chunks[0] as Uint8Array;
  const content = new Uint8Array(total);
  let offset = 0;
  for (const chunk of chunks) {
    content.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return content;
}

/** Encodes a known-length request; `paddingBytes` zero bytes are appended (RFC 9292 section 3.8). */
export function encodeBhttpRequest(request: BhttpRequest, paddingBytes = 0): Uint8Array {
  return concat(
    [
      encodeVarint(FRAMING.KNOWN_REQUEST),
      ...prefixed(encoder.encode(request.method)),
      ...prefixed(encoder.encode(request.scheme)),
      ...prefixed(encoder.encode(request.authority)),
      ...prefixed(encoder.encode(request.path)),
      ...fieldSection(request.headers),
      ...prefixed(request.content),
      ...fieldSection(request.trailers),
    ],
    paddingBytes,
  );
}

/** Encodes a known-length response (informational responses included); zero padding appended. */
export function encodeBhttpResponse(response: BhttpResponse, paddingBytes = 0): Uint8Array {
  return encodeBhttpResponsePieces(response, [response.content], () => paddingBytes);
}

/**
 * An encoded message not yet joined: its bytes are `parts` in order, then `paddingBytes` zeros.
 * The parts are views of the caller's content (uncopied) and of small encoded fields.
 */
export interface MessageParts {
  readonly parts: readonly Uint8Array[];
  readonly paddingBytes: number;
}

/**
 * A known-length response whose content is given as pieces, as parts to be written once where
 * they are needed — encrypted straight into the encapsulated response (encapsulation.ts) — with
 * `padding(length)` zero bytes after the unpadded `length` bytes.
 */
export function encodeBhttpResponseParts(
  response: Omit<BhttpResponse, 'content'>,
  content: readonly Uint8Array[],
  padding: (length: number) => number,
): MessageParts {
  const contentLength = content.reduce((sum, piece) => sum + piece.byteLength, 0);
  const parts = [
    encodeVarint(FRAMING.KNOWN_RESPONSE),
    ...response.informational.flatMap((entry) => [
      encodeVarint(entry.status),
      ...fieldSection(entry.headers),
    ]),
    encodeVarint(response.status),
    ...fieldSection(response.headers),
    encodeVarint(contentLength),
    ...content,
    ...fieldSection(response.trailers),
  ];
  const length = parts.reduce((sum, part) => sum + part.byteLength, 0);
  const paddingBytes = padding(length);
  if (!Number.isSafeInteger(paddingBytes) || paddingBytes < 0) throw new RangeError('bad padding length');
  return { parts, paddingBytes };
}

/**
 * Encodes a known-length response whose content is given as pieces, each written once straight
 * into the message (no concatenated content first), with `padding(length)` zero bytes after the
 * unpadded `length` bytes: one allocation however the content and padding are chosen.
 */
export function encodeBhttpResponsePieces(
  response: Omit<BhttpResponse, 'content'>,
  content: readonly Uint8Array[],
  padding: (length: number) => number,
): Uint8Array {
  const { parts, paddingBytes } = encodeBhttpResponseParts(response, content, padding);
  return concat(parts, paddingBytes);
}

function prefixed(bytes: Uint8Array): Uint8Array[] {
  return [encodeVarint(bytes.byteLength), bytes];
}

function fieldSection(fields: readonly Field[]): Uint8Array[] {
  const parts = fields.flatMap(([name, value]) => [
    ...prefixed(encoder.encode(name.toLowerCase())),
    ...prefixed(encoder.encode(value)),
  ]);
  const length = parts.reduce((sum, part) => sum + part.byteLength, 0);
  return [encodeVarint(length), ...parts];
}

function concat(parts: readonly Uint8Array[], paddingBytes: number): Uint8Array {
  const length = parts.reduce((sum, part) => sum + part.byteLength, 0);
  const bytes = new Uint8Array(length + paddingBytes);
  let offset = 0;
  for (const part of parts) {
    bytes.set(part, offset);
    offset += part.byteLength;
  }
  return bytes;
}
