/**
 * The client SDK (DESIGN.md 2): verify the enclave, then talk to it through the parent with
 * requests only the attested enclave can read. Nothing is sent to a key config until the document
 * that binds it has passed every check of the policy; the SDK re-attests when its attestation ages
 * out, when the gateway no longer knows the key, or when a model it has not seen attested is asked for;
 * `infer` refuses a model that even the fresh attestation does not list.
 */
import { randomBytes } from 'node:crypto';
import { verifyAttestation } from '../shared/attestation/index.ts';
import { decodeUserData, modelListDigest } from '../shared/binding.ts';
import type { ModelIdentity } from '../shared/binding.ts';
import { ClientError, ERROR_CODES, NitroInferError } from '../shared/errors.ts';
import type { ErrorCode } from '../shared/errors.ts';
import type {
  V2InferenceRequest,
  V2InferenceResponse,
  V2ModelMetadata,
  V2Tensor,
} from '../shared/inference/v2.ts';
import { decodeBhttpResponse, encodeBhttpRequest } from '../shared/ohttp/bhttp.ts';
import type { BhttpResponse } from '../shared/ohttp/bhttp.ts';
import { encapsulateRequest } from '../shared/ohttp/encapsulation.ts';
import { decodeKeyConfig } from '../shared/ohttp/key-config.ts';
import type { KeyConfig } from '../shared/ohttp/key-config.ts';
import { RECEIPT_HEADER, verifyReceipt } from '../shared/receipts.ts';
import type { Receipt } from '../shared/receipts.ts';
import { resolvePolicy } from './policy.ts';
import type { ClientPolicy, ResolvedPolicy } from './policy.ts';

/** Options of {@link createClient}. */
export interface ClientOptions {
  /** The parent's base URL, e.g. `https://inference.example.com`. */
  readonly endpoint: string;
  readonly policy: ClientPolicy;
  /** A fetch implementation (tests wrap it to watch traffic). */
  readonly fetch?: typeof fetch;
  /** The verification clock. */
  readonly clock?: () => number;
}

/** A verified attestation, as the client keeps it. */
export interface Attestation {
  readonly document: Uint8Array;
  readonly keyConfig: KeyConfig;
  readonly keyConfigBytes: Uint8Array;
  readonly receiptKey: Uint8Array;
  readonly models: readonly ModelIdentity[];
  readonly pcrs: ReadonlyMap<number, Uint8Array>;
  readonly moduleId: string;
  /** When the client verified it (ms). */
  readonly verifiedAt: number;
}

/** An inference answer with its verified receipt. */
export interface InferenceResult {
  readonly response: V2InferenceResponse;
  readonly receipt: Receipt;
  /** The receipt as received (base64url), to store as proof. */
  readonly receiptEncoded: string;
}

/** Longest a response body read from the parent may be. */
const MAX_RESPONSE_BYTES = 34 * 1024 * 1024;
const KNOWN_CODES: ReadonlySet<string> = new Set(ERROR_CODES);

export class NitroInferClient {
  readonly #endpoint: string;
  readonly #policy: ResolvedPolicy;
  readonly #fetch: typeof fetch;
  readonly #clock: () => number;
  #attestation: Attestation | undefined;

  constructor(options: ClientOptions) {
    this.#endpoint = options.endpoint.replace(/\/+$/, '');
    this.#policy = resolvePolicy(options.policy);
    this.#fetch = options.fetch ?? fetch;
    this.#clock = options.clock ?? Date.now;
  }

  /** The last verified attestation, if any. */
  get attestation(): Attestation | undefined {
    return this.#attestation;
  }

  /**
   * Fetches a fresh attestation with a new nonce and verifies all of it: the document against the
   * policy, then the key config, receipt key and model list served beside it against `user_data`.
   */
  async attest(): Promise<Attestation> {
    const nonce = new Uint8Array(randomBytes(32));
    const reply = await this.#getJson(`/v1/attestation?nonce=${Buffer.from(nonce).toString('hex')}`);
    const field = (name: string) => {
      const value = reply[name];
      if (typeof value !== 'string')
        throw new ClientError('ERR_CLIENT_BINDING_MISMATCH', `the attestation reply has no ${name}`);
      return new Uint8Array(Buffer.from(value, 'base64'));
    };
    const document = field('document');
    const now = this.#clock();
    const verified = verifyAttestation(document, {
      roots: this.#policy.roots,
      at: now,
      expectedPcrs: this.#policy.expectedPcrs,
      nonce,
      maxAgeMs: this.#policy.maxAgeMs,
      allowDebug: this.#policy.allowDebug,
    });
    // Only now is anything from the reply read; every part must be what the signed document binds.
    const userData = verified.document.userData;
    if (userData === undefined)
      throw new ClientError('ERR_CLIENT_BINDING_MISMATCH', 'the document binds no user_data');
    const binding = decodeUserData(userData);
    const keyConfigBytes = field('keyConfig');
    const receiptKey = field('receiptKey');
    const models = parseModels(reply.models);
    const same = (a: Uint8Array, b: Uint8Array) => Buffer.from(a).equals(Buffer.from(b));
    if (!same(keyConfigBytes, binding.ohttpKeyConfig)) {
      throw new ClientError(
        'ERR_CLIENT_BINDING_MISMATCH',
        'the served key config is not the one the document binds',
      );
    }
    if (!same(receiptKey, binding.receiptPublicKey)) {
      throw new ClientError(
        'ERR_CLIENT_BINDING_MISMATCH',
        'the served receipt key is not the one the document binds',
      );
    }
    if (!same(modelListDigest(models), binding.modelsDigest)) {
      throw new ClientError(
        'ERR_CLIENT_BINDING_MISMATCH',
        'the served model list is not the one the document binds',
      );
    }
    this.#attestation = {
      document,
      keyConfig: decodeKeyConfig(keyConfigBytes),
      keyConfigBytes,
      receiptKey,
      models,
      pcrs: verified.document.pcrs,
      moduleId: verified.document.moduleId,
      verifiedAt: now,
    };
    return this.#attestation;
  }

  /** Runs `POST /v2/models/{model}/infer` end to end encrypted; returns outputs and the verified receipt. */
  async infer(model: string, request: V2InferenceRequest | readonly V2Tensor[]): Promise<InferenceResult> {
    const body: V2InferenceRequest = Array.isArray(request)
      ? { inputs: request as V2Tensor[] }
      : (request as V2InferenceRequest);
    const content = new TextEncoder().encode(JSON.stringify(body));
    const { response, attestation } = await this.#send(
      'POST',
      `/v2/models/${encodeURIComponent(model)}/infer`,
      content,
      model,
      true,
    );
    const result = parseJson(response) as V2InferenceResponse;
    const encoded = response.headers.find(([name]) => name === RECEIPT_HEADER)?.[1];
    if (encoded === undefined)
      throw new ClientError('ERR_RECEIPT_INVALID', 'the response carries no receipt');
    const identity = attestation.models.find((entry) => entry.name === model);
    const receipt = verifyReceipt(encoded, attestation.receiptKey, {
      model,
      ...(identity === undefined ? {} : { sha384: identity.sha384 }),
      request: content,
      response: response.content,
      keyConfig: attestation.keyConfigBytes,
    });
    return { response: result, receipt, receiptEncoded: encoded };
  }

  /** `GET /v2/models/{model}` through the encrypted channel. */
  async metadata(model: string): Promise<V2ModelMetadata & { sha384: string }> {
    const { response } = await this.#send(
      'GET',
      `/v2/models/${encodeURIComponent(model)}`,
      new Uint8Array(0),
      model,
    );
    return parseJson(response) as V2ModelMetadata & { sha384: string };
  }

  /** `GET /v2/models` through the encrypted channel. */
  async models(): Promise<{ models: { name: string; sha384: string; ready: boolean }[] }> {
    const { response } = await this.#send('GET', '/v2/models', new Uint8Array(0));
    return parseJson(response) as { models: { name: string; sha384: string; ready: boolean }[] };
  }

  /** A usable attestation: the cached one unless it aged out or does not know `model`. */
  async #current(model?: string): Promise<Attestation> {
    const cached = this.#attestation;
    const fresh = cached !== undefined && this.#clock() - cached.verifiedAt < this.#policy.reattestAfterMs;
    const knows = model === undefined || cached?.models.some((entry) => entry.name === model) === true;
    return fresh && knows ? cached : this.attest();
  }

  /**
   * Sends one request through OHTTP. With `requireAttested`, refuses (before anything is sent) when
   * even a fresh attestation does not list `model`: the enclave would answer from a model no
   * attestation vouches for, or the parent would learn that the client wanted one it hid.
   */
  async #send(method: string, path: string, content: Uint8Array, model?: string, requireAttested = false) {
    const attested = (attestation: Attestation) => {
      const identity = attestation.models.find((entry) => entry.name === model);
      if (requireAttested && identity === undefined) {
        throw new ClientError(
          'ERR_CLIENT_MODEL_NOT_ATTESTED',
          'the requested model is not in the attested model list; the request was not sent',
        );
      }
      const pinned = model === undefined ? undefined : this.#policy.models.get(model);
      if (pinned !== undefined && identity?.sha384.toLowerCase() !== pinned) {
        throw new ClientError(
          'ERR_CLIENT_MODEL_NOT_ATTESTED',
          `the enclave attests ${model} with digest ${identity?.sha384 ?? '(none)'}, the policy pins ${pinned}; the request was not sent`,
        );
      }
      return attestation;
    };
    let attestation = attested(await this.#current(model));
    for (let attempt = 0; ; attempt++) {
      // The Date lets the enclave bound how long it remembers requests against replay (RFC 9458
      // section 6.5.1). Every attempt is a fresh encapsulation, so a fresh `enc`: the SDK never
      // sends one `enc` twice, and the enclave refuses any `enc` it has already answered.
      const headers: [string, string][] = [['date', new Date(this.#clock()).toUTCString()]];
      if (content.byteLength > 0) headers.push(['content-type', 'application/json']);
      const message = encodeBhttpRequest({
        method,
        scheme: 'https',
        authority: '',
        path,
        headers,
        content,
        trailers: [],
      });
      const { encapsulated, opener } = await encapsulateRequest(attestation.keyConfig, message);
      const reply = await this.#fetch(`${this.#endpoint}/.well-known/ohttp-gateway`, {
        method: 'POST',
        headers: { 'content-type': 'message/ohttp-req' },
        body: encapsulated,
      });
      const bytes = await readBody(reply);
      if (reply.status === 400 && attempt === 0) {
        // The gateway did not know our key (an enclave restarted with a new one): attest again and
        // resend only if the enclave now binds another key config. A bare 400 is unauthenticated:
        // a parent that relayed the request, let it run and then answered 400 must not get the
        // same request run a second time.
        const refused = attestation.keyConfigBytes;
        attestation = attested(await this.attest());
        if (Buffer.from(attestation.keyConfigBytes).equals(Buffer.from(refused))) {
          throw new ClientError(
            'ERR_CLIENT_REQUEST_FAILED',
            'the parent answered 400 to a request sealed to the key config the enclave still attests; not resent (the enclave may have processed it)',
          );
        }
        continue;
      }
      if (reply.status !== 200 || reply.headers.get('content-type') !== 'message/ohttp-res') {
        throw outerError(reply.status, bytes);
      }
      const response = decodeBhttpResponse(opener.open(bytes));
      if (response.status !== 200) throw innerError(response);
      return { response, attestation };
    }
  }

  async #getJson(path: string): Promise<Record<string, unknown>> {
    const reply = await this.#fetch(`${this.#endpoint}${path}`);
    const bytes = await readBody(reply);
    if (reply.status !== 200) throw outerError(reply.status, bytes);
    try {
      return JSON.parse(Buffer.from(bytes).toString('utf8')) as Record<string, unknown>;
    } catch {
      throw new ClientError(
        'ERR_CLIENT_REQUEST_FAILED',
        'the parent answered with something that is not JSON',
      );
    }
  }
}

/** Creates a client. */
export function createClient(options: ClientOptions): NitroInferClient {
  return new NitroInferClient(options);
}

/** Reads a response body, refusing more than MAX_RESPONSE_BYTES as it streams in (chunked replies too). */
async function readBody(reply: Response): Promise<Uint8Array> {
  const tooLarge = () => new ClientError('ERR_CLIENT_REQUEST_FAILED', 'the response is too large');
  if (Number(reply.headers.get('content-length') ?? '0') > MAX_RESPONSE_BYTES) throw tooLarge();
  if (reply.body === null) return new Uint8Array(0);
  const parts: Uint8Array[] = [];
  let total = 0;
  for await (const part of reply.body as unknown as AsyncIterable<Uint8Array>) {
    total += part.byteLength;
    if (total > MAX_RESPONSE_BYTES) {
      await reply.body.cancel().catch(() => {});
      throw tooLarge();
    }
    parts.push(part);
  }
  return new Uint8Array(Buffer.concat(parts, total));
}

function parseModels(value: unknown): ModelIdentity[] {
  if (!Array.isArray(value) || value.length > 1024)
    throw new ClientError('ERR_CLIENT_BINDING_MISMATCH', 'the model list is missing');
  return value.map((entry: unknown) => {
    const { name, sha384 } = (entry ?? {}) as { name?: unknown; sha384?: unknown };
    if (typeof name !== 'string' || typeof sha384 !== 'string') {
      throw new ClientError('ERR_CLIENT_BINDING_MISMATCH', 'a model list entry is malformed');
    }
    return { name, sha384 };
  });
}

function parseJson(response: BhttpResponse): unknown {
  try {
    return JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(response.content));
  } catch {
    throw new ClientError(
      'ERR_CLIENT_REQUEST_FAILED',
      'the enclave answered with something that is not JSON',
    );
  }
}

/** An error the parent answered with (before decryption): its code when it is one of ours. */
function outerError(status: number, bytes: Uint8Array): NitroInferError {
  try {
    const code = (
      JSON.parse(Buffer.from(bytes).toString('utf8')) as { error?: { code?: string; message?: string } }
    ).error;
    if (typeof code?.code === 'string' && KNOWN_CODES.has(code.code)) {
      return new NitroInferError(
        code.code as ErrorCode,
        `${status}: ${String(code.message ?? '').slice(0, 300)}`,
      );
    }
  } catch {
    // fall through
  }
  return new ClientError('ERR_CLIENT_REQUEST_FAILED', `the parent answered HTTP ${status}`);
}

/** An error the enclave answered with inside the encryption. */
function innerError(response: BhttpResponse): NitroInferError {
  try {
    const body = JSON.parse(new TextDecoder().decode(response.content)) as { code?: string; error?: string };
    if (typeof body.code === 'string' && KNOWN_CODES.has(body.code)) {
      return new NitroInferError(body.code as ErrorCode, String(body.error ?? '').slice(0, 300));
    }
  } catch {
    // fall through
  }
  return new ClientError('ERR_CLIENT_REQUEST_FAILED', `the enclave answered ${response.status}`);
}
