/**
 * The OHTTP gateway inside the enclave (DESIGN.md 2, 4.2): decapsulate, route the inner Binary
 * HTTP request to the inference engine, and encapsulate a padded response carrying a signed
 * receipt. Two tiers (STYLE.md 4): a request that cannot be opened is refused with a typed error
 * the relay sees (it learns nothing else); everything after opening — bad JSON, unknown model,
 * failed inference — travels inside the encrypted response, invisible to the parent. Replay
 * refusals (replay-window.ts) are inner too: they are authenticated "not processed" signals the
 * parent cannot forge, so it cannot trick a client into sending a request twice.
 */
import { isNitroInferError } from '../../shared/errors.ts';
import type { ErrorCode } from '../../shared/errors.ts';
import { parseInferenceRequest } from '../../shared/inference/v2.ts';
import { decodeBhttpRequest, encodeBhttpResponse } from '../../shared/ohttp/bhttp.ts';
import type { BhttpRequest, BhttpResponse, Field } from '../../shared/ohttp/bhttp.ts';
import { paddedLength } from '../../shared/ohttp/padding.ts';
import { RECEIPT_HEADER, sha256, signReceipt } from '../../shared/receipts.ts';
import type { InferencePool } from '../inference/pool.ts';
import type { ModelManager } from '../models/model-manager.ts';
import type { OhttpKeys, ReceiptKey } from './ohttp-keys.ts';
import type { ReplayWindow } from './replay-window.ts';

/** Model names as they appear in paths (the parent's admin API uses the same pattern). */
const MODEL_NAME = '[A-Za-z0-9][A-Za-z0-9._-]{0,127}';
const INFER_PATH = new RegExp(`^/v2/models/(${MODEL_NAME})/infer$`);
const MODEL_PATH = new RegExp(`^/v2/models/(${MODEL_NAME})$`);
const READY_PATH = new RegExp(`^/v2/models/(${MODEL_NAME})/ready$`);

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

class InnerError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

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
    let response: BhttpResponse;
    try {
      const inner = decodeBhttpRequest(request.message);
      // Synchronous with the decapsulation's end: two copies of one request cannot both pass.
      this.#options.replay.admit(inner.headers, request.enc);
      response = await this.#route(inner, keyConfig, request.receipts);
    } catch (error) {
      response = errorResponse(error, (this.#options.clock ?? Date.now)());
    }
    const encoded = encodeBhttpResponse(response);
    const padding =
      this.#options.padResponses === false ? 0 : paddedLength(encoded.byteLength) - encoded.byteLength;
    return request.respond(padding === 0 ? encoded : encodeBhttpResponse(response, padding));
  }

  async #route(request: BhttpRequest, keyConfig: Uint8Array, receipts: ReceiptKey): Promise<BhttpResponse> {
    const { models, pool } = this.#options;
    const path = request.path.split('?')[0] ?? '';
    const infer = INFER_PATH.exec(path);
    if (infer !== null) {
      if (request.method !== 'POST') throw new InnerError(405, 'ERR_HTTP_BAD_REQUEST', 'use POST');
      const contentType = header(request.headers, 'content-type')?.split(';')[0]?.trim();
      if (contentType !== 'application/json') {
        throw new InnerError(415, 'ERR_HTTP_UNSUPPORTED_MEDIA_TYPE', 'the body must be application/json');
      }
      const name = infer[1] as string;
      const model = models.list().find((entry) => entry.identity.name === name);
      if (model === undefined)
        throw new InnerError(404, 'ERR_MODEL_NOT_FOUND', `model ${name} is not loaded`);
      let body: unknown;
      try {
        body = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(request.content));
      } catch {
        throw new InnerError(400, 'ERR_INFERENCE_INPUT_INVALID', 'the body is not JSON');
      }
      const result = await pool.infer(name, parseInferenceRequest(body));
      const content = new TextEncoder().encode(JSON.stringify(result));
      const receipt = signReceipt(
        {
          model: name,
          sha384: model.identity.sha384,
          requestSha256: sha256(request.content),
          responseSha256: sha256(content),
          time: (this.#options.clock ?? Date.now)(),
          keyConfigSha256: sha256(keyConfig),
        },
        receipts.privateKey,
      );
      return json(200, content, [[RECEIPT_HEADER, receipt]]);
    }
    if (request.method !== 'GET') throw new InnerError(405, 'ERR_HTTP_BAD_REQUEST', 'use GET');
    if (path === '/v2/models') {
      return jsonValue(200, { models: models.list().map((entry) => ({ ...entry.identity, ready: true })) });
    }
    const ready = READY_PATH.exec(path);
    const metadata = MODEL_PATH.exec(path);
    const name = ready?.[1] ?? metadata?.[1];
    const model = models.list().find((entry) => entry.identity.name === name);
    if (name !== undefined && model === undefined)
      throw new InnerError(404, 'ERR_MODEL_NOT_FOUND', `model ${name} is not loaded`);
    if (ready !== null && model !== undefined)
      return jsonValue(200, { name: model.identity.name, ready: true });
    if (metadata !== null && model !== undefined) {
      return jsonValue(200, { ...model.metadata, sha384: model.identity.sha384 });
    }
    throw new InnerError(404, 'ERR_HTTP_NOT_FOUND', 'no such route');
  }
}

function header(fields: readonly Field[], name: string): string | undefined {
  return fields.find(([fieldName]) => fieldName === name)?.[1];
}

function json(status: number, content: Uint8Array, extra: readonly Field[] = []): BhttpResponse {
  return {
    informational: [],
    status,
    headers: [['content-type', 'application/json'], ...extra],
    content,
    trailers: [],
  };
}

function jsonValue(status: number, value: unknown, extra: readonly Field[] = []): BhttpResponse {
  return json(status, new TextEncoder().encode(JSON.stringify(value)), extra);
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
