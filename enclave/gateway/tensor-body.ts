/**
 * The bodies of `POST /v2/models/{name}/infer` inside the enclave: V2 JSON, or the binary tensor
 * data extension (shared/inference/binary-tensor.ts) — a JSON header of `Inference-Header-Content-Length`
 * bytes followed by raw tensors. Both arrive decrypted from the client; every declared size is
 * checked before a byte is viewed, and a lie is an ERR_INFERENCE_INPUT_INVALID inside the
 * encryption. Tensor bytes stay where decryption put them (views, no copy); a response's binary
 * outputs are handed on as pieces, to be written once into the Binary HTTP message.
 */
import { InferenceError } from '../../shared/errors.ts';
import { splitBinaryBody } from '../../shared/inference/binary-tensor.ts';
import { parseInferenceRequest } from '../../shared/inference/v2.ts';
import type { V2InferenceRequest, V2InferenceResponse } from '../../shared/inference/v2.ts';
import type { Field } from '../../shared/ohttp/bhttp.ts';

/** The inner header that says where the JSON header of a binary body ends. */
export const INFERENCE_HEADER_LENGTH = 'inference-header-content-length';

/** Content types of an infer body: JSON, or a binary body (the JSON header says the rest). */
const JSON_TYPE = 'application/json';
const BINARY_TYPE = 'application/octet-stream';

/** Why a body is refused before it is parsed (the gateway maps it to 415). */
export class UnsupportedBody extends Error {}

/**
 * Reads an infer body. With `Inference-Header-Content-Length` the body is binary: the JSON header,
 * then exactly the tensors it declares. Without it the body is plain V2 JSON.
 * @throws {UnsupportedBody} a content type that is neither.
 * @throws {InferenceError} `ERR_INFERENCE_INPUT_INVALID`.
 */
export function readInferenceRequest(headers: readonly Field[], content: Uint8Array): V2InferenceRequest {
  const headerLength = checkContentType(headers);
  if (headerLength === undefined) return parseInferenceRequest(parseJson(content));
  const { header: json, tensors } = splitBinaryBody(content, headerLength);
  return parseInferenceRequest(parseJson(json), tensors);
}

/**
 * Checks the content type before anything else is looked at; returns the binary header length
 * field, if any.
 * @throws {UnsupportedBody}
 */
export function checkContentType(headers: readonly Field[]): string | undefined {
  const contentType = header(headers, 'content-type')?.split(';')[0]?.trim().toLowerCase();
  const headerLength = header(headers, INFERENCE_HEADER_LENGTH);
  if (headerLength === undefined) {
    if (contentType !== JSON_TYPE) throw new UnsupportedBody('the body must be application/json');
    return undefined;
  }
  // Triton's clients send binary bodies as octet-stream; some label them JSON. Either is read the same way.
  if (contentType !== BINARY_TYPE && contentType !== JSON_TYPE)
    throw new UnsupportedBody('a binary body must be application/octet-stream');
  return headerLength;
}

/** A response body as pieces to be written once into the message, and the headers that describe it. */
export interface ResponseBody {
  readonly headers: Field[];
  readonly pieces: readonly Uint8Array[];
}

/**
 * Lays out a response: plain JSON when no output is binary, else the JSON header (each binary
 * output declares its `binary_data_size`) followed by the outputs' bytes in order, uncopied.
 */
export function inferenceResponseBody(response: V2InferenceResponse): ResponseBody {
  const blobs: Uint8Array[] = [];
  const outputs = response.outputs.map(({ binary, ...output }) => {
    if (binary === undefined) return output;
    blobs.push(binary);
    // A binary output carries no `data`: its elements are in the binary section.
    const { name, datatype, shape, parameters } = output;
    return { name, datatype, shape, parameters: { ...parameters, binary_data_size: binary.byteLength } };
  });
  const json = new TextEncoder().encode(JSON.stringify({ ...response, outputs }));
  if (blobs.length === 0) return { headers: [['content-type', JSON_TYPE]], pieces: [json] };
  return {
    headers: [
      ['content-type', BINARY_TYPE],
      [INFERENCE_HEADER_LENGTH, String(json.byteLength)],
    ],
    pieces: [json, ...blobs],
  };
}

function parseJson(bytes: Uint8Array): unknown {
  try {
    return JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch {
    throw new InferenceError('ERR_INFERENCE_INPUT_INVALID', 'the body is not JSON');
  }
}

function header(fields: readonly Field[], name: string): string | undefined {
  return fields.find(([fieldName]) => fieldName === name)?.[1];
}
