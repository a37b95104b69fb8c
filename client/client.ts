/**
 * The client SDK (DESIGN.md 2): verify the enclave, then talk to it through the parent with
 * requests only the attested enclave can read. Nothing is sent to a key config until the document
 * that binds it has passed every check of the policy; the SDK re-attests when its attestation ages
 * out, when the gateway answers RFC 9458's `ohttp-key` problem (it no longer knows the key), or when a
 * model it has not seen attested is asked for; `infer` refuses a model that even the fresh
 * attestation does not list. Concurrent calls share one attestation in flight; every call takes a
 * deadline and an AbortSignal (client/transport.ts).
 */
import { randomBytes } from 'node:crypto';
import { ClientError } from '../shared/errors.ts';
import type { V2ModelMetadata } from '../shared/inference/v2.ts';
import { decodeBhttpResponse, encodeBhttpRequest } from '../shared/ohttp/bhttp.ts';
import { encapsulateRequest } from '../shared/ohttp/encapsulation.ts';
import { RECEIPT_HEADER, verifyReceipt } from '../shared/receipts.ts';
import { acceptAttestation } from './attestation.ts';
import type { Attestation } from './attestation.ts';
import { AttestationCache } from './attestation-cache.ts';
import { resolvePolicy } from './policy.ts';
import type { ResolvedPolicy } from './policy.ts';
import { CallContext, checkCallOptions, fetchTransport, isOhttpKeyProblem, outerError } from './transport.ts';
import type { CallOptions, Transport } from './transport.ts';
import { NodeHttpTransport } from './node-transport.ts';
import { innerError, padded, parseJson } from './inner-message.ts';
import type { ClientOptions, ForwardRequest, ForwardResult, InferenceResult } from './types.ts';

export type { Attestation } from './attestation.ts';
export type { CallOptions } from './transport.ts';
export type { ClientOptions, ForwardRequest, ForwardResult, InferenceResult } from './types.ts';
import { decodeInferenceResponse, encodeInferenceRequest } from './tensors.ts';
import type { ClientInferenceRequest, ClientTensor, InferOptions } from './tensors.ts';

const same = (a: Uint8Array, b: Uint8Array) => Buffer.from(a).equals(Buffer.from(b));

export class NitroInferClient {
  readonly #endpoint: string;
  readonly #policy: ResolvedPolicy;
  readonly #transport: Transport;
  readonly #clock: () => number;
  readonly #timeoutMs: number | undefined;
  readonly #signal: AbortSignal | undefined;
  readonly #attestations: AttestationCache;

  constructor(options: ClientOptions) {
    checkCallOptions(options, 'options');
    this.#endpoint = options.endpoint.replace(/\/+$/, '');
    this.#policy = resolvePolicy(options.policy);
    // A caller's fetch is used as given; otherwise node:http, which costs far less CPU per request
    // than global fetch (client/node-transport.ts).
    this.#transport = options.fetch === undefined ? new NodeHttpTransport() : fetchTransport(options.fetch);
    this.#clock = options.clock ?? Date.now;
    this.#timeoutMs = options.timeoutMs;
    this.#signal = options.signal;
    this.#attestations = new AttestationCache({
      fetchOne: (context) => this.#attestOnce(context),
      clientSignal: this.#signal,
      clock: this.#clock,
      reattestAfterMs: this.#policy.reattestAfterMs,
    });
  }

  /**
   * Closes the connections the client keeps alive to the parent (idle ones never keep a process
   * alive; this lets a server shut down at once). The client stays usable: a later call reconnects.
   */
  close(): void {
    this.#transport.close();
  }

  /** The last verified attestation, if any. */
  get attestation(): Attestation | undefined {
    return this.#attestations.latest;
  }

  /**
   * Fetches a fresh attestation with a new nonce and verifies all of it: the document against the
   * policy, then the key config, receipt key and model list served beside it against `user_data`.
   * Calls made while one is in flight share it (one request, one verification).
   */
  async attest(options?: CallOptions): Promise<Attestation> {
    return this.#attestations.fresh(this.#context(options));
  }

  /**
   * Runs `POST /v2/models/{model}/infer` end to end encrypted; returns outputs and the verified
   * receipt. Typed-array inputs go as binary tensors (tensors.ts) and binary outputs come back as
   * typed arrays; `options.binary` chooses explicitly.
   */
  async infer(
    model: string,
    request: ClientInferenceRequest | readonly ClientTensor[],
    options: InferOptions & CallOptions = {},
  ): Promise<InferenceResult> {
    const body: ClientInferenceRequest = Array.isArray(request)
      ? { inputs: request as ClientTensor[] }
      : (request as ClientInferenceRequest);
    const { content, headers } = encodeInferenceRequest(body, options);
    const { response, attestation } = await this.#send(
      'POST',
      `/v2/models/${encodeURIComponent(model)}/infer`,
      content,
      options,
      model,
      true,
      headers,
    );
    const result = decodeInferenceResponse(response.headers, response.content);
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

  /**
   * Sends one inner HTTP request as given (method, path, content type, body bytes) end to end
   * encrypted and returns the enclave's answer whatever its status, so a relay such as
   * `nitro-infer proxy` passes bodies through byte for byte. A receipt, when present, is verified
   * against the request and response bytes, the attested receipt key and the model's digest.
   */
  async forward(request: ForwardRequest, options?: CallOptions): Promise<ForwardResult> {
    const body = request.body ?? new Uint8Array(0);
    const { response, attestation } = await this.#send(
      request.method,
      request.path,
      body,
      options,
      request.model,
      request.requireAttested === true,
      request.headers,
      true,
    );
    const result = {
      status: response.status,
      headers: response.headers,
      content: response.content,
      attestation,
    };
    const encoded = response.headers.find(([name]) => name === RECEIPT_HEADER)?.[1];
    if (encoded === undefined) {
      if (request.requireReceipt === true && response.status === 200)
        throw new ClientError('ERR_RECEIPT_INVALID', 'the response carries no receipt');
      return result;
    }
    const identity = attestation.models.find((entry) => entry.name === request.model);
    const receipt = verifyReceipt(encoded, attestation.receiptKey, {
      ...(request.model === undefined ? {} : { model: request.model }),
      ...(identity === undefined ? {} : { sha384: identity.sha384 }),
      request: body,
      response: response.content,
      keyConfig: attestation.keyConfigBytes,
    });
    return { ...result, receipt, receiptEncoded: encoded };
  }

  /** `GET /v2/models/{model}` through the encrypted channel. */
  async metadata(model: string, options?: CallOptions): Promise<V2ModelMetadata & { sha384: string }> {
    const { response } = await this.#send(
      'GET',
      `/v2/models/${encodeURIComponent(model)}`,
      new Uint8Array(0),
      options,
      model,
    );
    return parseJson(response) as V2ModelMetadata & { sha384: string };
  }

  /** `GET /v2/models` through the encrypted channel. */
  async models(
    options?: CallOptions,
  ): Promise<{ models: { name: string; sha384: string; ready: boolean }[] }> {
    const { response } = await this.#send('GET', '/v2/models', new Uint8Array(0), options);
    return parseJson(response) as { models: { name: string; sha384: string; ready: boolean }[] };
  }

  /** This call's deadline and cancellation: its own options, else the client's. */
  #context(options: CallOptions | undefined): CallContext {
    checkCallOptions(options, 'call options');
    return new CallContext(options?.timeoutMs ?? this.#timeoutMs, [this.#signal, options?.signal]);
  }

  async #attestOnce(context: CallContext): Promise<Attestation> {
    const nonce = new Uint8Array(randomBytes(32));
    const reply = await this.#getJson(`/v1/attestation?nonce=${Buffer.from(nonce).toString('hex')}`, context);
    context.check();
    return acceptAttestation(reply, nonce, this.#policy, this.#clock());
  }

  /**
   * Sends one request through OHTTP. With `requireAttested`, refuses (before anything is sent) when
   * even a fresh attestation does not list `model`: the enclave would answer from a model no
   * attestation vouches for, or the parent would learn that the client wanted one it hid.
   */
  async #send(
    method: string,
    path: string,
    content: Uint8Array,
    options: CallOptions | undefined,
    model?: string,
    requireAttested = false,
    bodyHeaders?: readonly (readonly [string, string])[],
    anyStatus = false,
  ) {
    const context = this.#context(options);
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
    let attestation = attested(await this.#attestations.usable(context, model));
    for (let attempt = 0; ; attempt++) {
      // The Date lets the enclave bound how long it remembers requests against replay (RFC 9458
      // section 6.5.1). Every attempt is a fresh encapsulation, so a fresh `enc`: the SDK never
      // sends one `enc` twice, and the enclave refuses any `enc` it has already answered.
      const headers: [string, string][] = [['date', new Date(this.#clock()).toUTCString()]];
      if (bodyHeaders !== undefined)
        headers.push(...bodyHeaders.map(([name, value]): [string, string] => [name, value]));
      else if (content.byteLength > 0) headers.push(['content-type', 'application/json']);
      const unpadded = encodeBhttpRequest({
        method,
        scheme: 'https',
        authority: '',
        path,
        headers,
        content,
        trailers: [],
      });
      // Requests are padded to the responses' size buckets (shared/ohttp/padding.ts): with binary
      // tensors the ciphertext length would otherwise tell the relay the exact input size.
      const message = padded(unpadded);
      const { encapsulated, opener } = await encapsulateRequest(attestation.keyConfig, message);
      const reply = await this.#transport.send(
        `${this.#endpoint}/.well-known/ohttp-gateway`,
        { method: 'POST', headers: { 'content-type': 'message/ohttp-req' }, body: encapsulated },
        context,
      );
      if (isOhttpKeyProblem(reply)) {
        // RFC 9458 section 5.3: the gateway does not know our key config (an enclave restarted
        // with a new key). Only this problem type re-attests, once. It is unauthenticated: the
        // parent may have relayed the request, let it run, dropped the answer and then made the
        // enclave change key (`cluster.rotate`, a restart, another genuine enclave) before forging
        // the problem. So only a request that is safe to repeat (GET: reads, no body) is resent to
        // the new key; any other is not — the caller learns, by ERR_CLIENT_KEY_CHANGED, that the
        // client has re-attested and that the request may have run, and decides whether to retry.
        const refused = attestation.keyConfigBytes;
        if (attempt > 0) {
          throw new ClientError(
            'ERR_CLIENT_REQUEST_FAILED',
            'the gateway refused the freshly attested key config too (ohttp-key problem); not resent',
          );
        }
        // Another call may already have re-attested since this one sealed its request.
        const cached = this.#attestations.latest;
        attestation = attested(
          cached !== undefined && !same(cached.keyConfigBytes, refused)
            ? cached
            : await this.#attestations.fresh(context),
        );
        if (same(attestation.keyConfigBytes, refused)) {
          throw new ClientError(
            'ERR_CLIENT_REQUEST_FAILED',
            'the parent answered the ohttp-key problem to a request sealed to the key config the enclave still attests; not resent (the enclave may have processed it)',
          );
        }
        if (method !== 'GET') {
          throw new ClientError(
            'ERR_CLIENT_KEY_CHANGED',
            'the enclave attests a new key config (ohttp-key problem); the client re-attested but did not resend: the request may have run, retry it if running it twice is acceptable',
          );
        }
        continue;
      }
      if (reply.status !== 200 || reply.header('content-type') !== 'message/ohttp-res') {
        throw outerError(reply.status, reply.bytes);
      }
      context.check();
      const response = decodeBhttpResponse(opener.open(reply.bytes));
      if (response.status !== 200 && !anyStatus) throw innerError(response);
      return { response, attestation };
    }
  }

  async #getJson(path: string, context: CallContext): Promise<Record<string, unknown>> {
    const { status, bytes } = await this.#transport.send(
      `${this.#endpoint}${path}`,
      { method: 'GET' },
      context,
    );
    if (status !== 200) throw outerError(status, bytes);
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
