/**
 * The OHTTP gateway inside the enclave (DESIGN.md 2, 4.2): decapsulate, route the inner Binary
 * HTTP request to the inference engine, and encapsulate a padded response carrying a signed
 * receipt. Two tiers (STYLE.md 4): a request that cannot be opened is refused with a typed error
 * the relay sees (it learns nothing else); everything after opening — bad JSON, unknown model,
 * failed inference — travels inside the encrypted response, invisible to the parent. Replay
 * refusals (replay-window.ts) are inner too: they are authenticated "not processed" signals the
 * parent cannot forge, so it cannot trick a client into sending a request twice.
 */
import { createHash } from 'node:crypto';
import { isNitroInferError } from '../../shared/errors.ts';
import type { ErrorCode } from '../../shared/errors.ts';
import { SERVER_PARAMETERS } from '../../shared/inference/v2.ts';
import type { V2InferenceRequest, V2InferenceResponse } from '../../shared/inference/v2.ts';
import { decodeBhttpRequest, encodeBhttpResponseParts } from '../../shared/ohttp/bhttp.ts';
import type { BhttpRequest, BhttpResponse, Field } from '../../shared/ohttp/bhttp.ts';
import { paddedLength } from '../../shared/ohttp/padding.ts';
import { RECEIPT_HEADER, sha256, signReceipt } from '../../shared/receipts.ts';
import type { InferencePool } from '../inference/pool.ts';
import type { ModelManager } from '../models/model-manager.ts';
import type { OhttpKeys, ReceiptKey } from './ohttp-keys.ts';
import { answerMetadataRoute, findModel, InnerError, jsonValue, matchRoute } from './routes.ts';
import type { ReplayWindow } from './replay-window.ts';
import {
  checkContentType,
  inferenceResponseBody,
  readInferenceRequest,
  UnsupportedBody,
} from './tensor-body.ts';

/** A response whose content is given as pieces (binary outputs), written once into the message. */
type InnerResponse = BhttpResponse & { readonly pieces?: readonly Uint8Array[] };

const STATUS: Partial<Record<ErrorCode, number>> = {
  ERR_BHTTP_MALFORMED: 400,
  // RFC 9458 section 6.5.2: a Date outside the window is a 400, with the gateway's Date beside it.
  ERR_OHTTP_DATE_INVALID: 400,
  ERR_OHTTP_REPLAYED: 400,
  ERR_OHTTP_REPLAY_CACHE_FULL: 503,
  ERR_INFERENCE_INPUT_INVALID: 400,
  ERR_MODEL_NOT_FOUND: 404,
  ERR_MODEL_NOT_READY: 503,
  ERR_INFERENCE_FAILED: 500,
};

export interface InferenceGatewayOptions {
  readonly keys: OhttpKeys;
  readonly pool: InferencePool;
  readonly models: ModelManager;
  /** Anti-replay: every decapsulated request passes it before anything else is done. */
  readonly replay: ReplayWindow;
  /** Pad responses to size buckets (on by default). */
  readonly padResponses?: boolean;
  readonly clock?: () => number;
}

export class InferenceGateway {
  readonly #options: InferenceGatewayOptions;

  constructor(options: InferenceGatewayOptions) {
    this.#options = options;
  }

  /**
   * Handles one encapsulated request; resolves with the encapsulated response.
   * @throws {OhttpError} ERR_OHTTP_MALFORMED / ERR_OHTTP_KEY_UNKNOWN / ERR_DECRYPT_FAILED (outer tier).
   */
  async handle(encapsulated: Uint8Array): Promise<Uint8Array> {
    const request = await this.#options.keys.decapsulate(encapsulated);
    const keyConfig = request.keyConfig;
    let response: InnerResponse;
    try {
      const inner = decodeBhttpRequest(request.message);
      // Synchronous with the decapsulation's end: two copies of one request cannot both pass.
      this.#options.replay.admit(inner.headers, request.enc);
      response = await this.#route(inner, keyConfig, request.receipts);
    } catch (error) {
      response = errorResponse(error, (this.#options.clock ?? Date.now)());
    }
    const pad = this.#options.padResponses !== false;
    // Encrypted from its parts straight into the encapsulated response: no plaintext message.
    const encoded = encodeBhttpResponseParts(response, response.pieces ?? [response.content], (length) =>
      pad ? paddedLength(length) - length : 0,
    );
    return request.respond(encoded);
  }

  async #route(request: BhttpRequest, keyConfig: Uint8Array, receipts: ReceiptKey): Promise<InnerResponse> {
    const route = matchRoute(request.method, request.path);
    if (route.kind !== 'infer') return answerMetadataRoute(route, this.#options.models);
    const { pool } = this.#options;
    try {
      checkContentType(request.headers);
    } catch (error) {
      if (error instanceof UnsupportedBody)
        throw new InnerError(415, 'ERR_HTTP_UNSUPPORTED_MEDIA_TYPE', error.message);
      throw error;
    }
    const name = route.name;
    const model = findModel(this.#options.models, name, route.version);
    const parsed = readInferenceRequest(request.headers, request.content);
    // Hashed now: binary tensors are views into the body, whose buffer moves to a worker.
    const requestSha256 = sha256(request.content);
    const result = withRequestEcho(await pool.infer(name, parsed), parsed, model.identity.sha384);
    const body = inferenceResponseBody(result);
    const receipt = signReceipt(
      {
        model: name,
        sha384: model.identity.sha384,
        requestSha256,
        responseSha256: sha256Pieces(body.pieces),
        time: (this.#options.clock ?? Date.now)(),
        keyConfigSha256: sha256(keyConfig),
      },
      receipts.privateKey,
    );
    return {
      informational: [],
      status: 200,
      headers: [...body.headers, [RECEIPT_HEADER, receipt]],
      content: new Uint8Array(0),
      trailers: [],
      pieces: body.pieces,
    };
  }
}

/**
 * The response as the protocol has it: `model_version` is the digest that served it, `id` is the
 * request's, and the request's `parameters` come back (all but those the server itself acts on),
 * so a client's correlation data survives the round trip.
 */
function withRequestEcho(
  response: V2InferenceResponse,
  request: V2InferenceRequest,
  version: string,
): V2InferenceResponse {
  const parameters = Object.fromEntries(
    Object.entries(request.parameters ?? {}).filter(([key]) => !SERVER_PARAMETERS.has(key)),
  );
  return {
    model_name: response.model_name,
    model_version: version,
    ...(request.id === undefined ? {} : { id: request.id }),
    ...(Object.keys(parameters).length === 0 ? {} : { parameters }),
    outputs: response.outputs,
  };
}

/** SHA-256 of the pieces as one body, without joining them. */
function sha256Pieces(pieces: readonly Uint8Array[]): Uint8Array {
  const hash = createHash('sha256');
  for (const piece of pieces) hash.update(piece);
  return new Uint8Array(hash.digest());
}

/** Errors after decapsulation, as KServe-style JSON inside the encryption. */
function errorResponse(error: unknown, now: number): BhttpResponse {
  if (error instanceof InnerError) return jsonValue(error.status, { error: error.message, code: error.code });
  if (isNitroInferError(error)) {
    const status = STATUS[error.code] ?? 500;
    // RFC 9458 section 6.5.2: the gateway's Date lets a client see how far off its clock is.
    const extra: Field[] =
      error.code === 'ERR_OHTTP_DATE_INVALID'
        ? [['date', new Date(now).toUTCString()]]
        : status === 503
          ? [['retry-after', '1']]
          : [];
    return jsonValue(
      status,
      status === 500 && error.code !== 'ERR_INFERENCE_FAILED'
        ? { error: 'internal error', code: 'ERR_INTERNAL' }
        : { error: error.message, code: error.code },
      extra,
    );
  }
  return jsonValue(500, { error: 'internal error', code: 'ERR_INTERNAL' });
}
