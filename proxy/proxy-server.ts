/**
 * `nitro-infer proxy`: a local Open Inference Protocol v2 server for tools that speak plain HTTP
 * (KServe and Triton clients, curl). Every request is forwarded as an inner HTTP request — method,
 * path, body headers and body bytes unchanged — through OHTTP by the SDK, so only the attested
 * enclave reads it; the parent relays ciphertext. Nothing is forwarded before an attestation has
 * passed the policy, and the SDK re-attests as the policy requires. Every receipt is verified
 * before its response is passed on (and logged when asked); a response whose receipt does not
 * verify is withheld. The proxy's own health routes say whether the enclave is attested, and why not.
 * Requests from web pages are refused (origin-check.ts).
 */
import { createServer } from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { NitroInferClient } from '../client/index.ts';
import { isNitroInferError } from '../shared/errors.ts';
import { hostsNaming, refusal } from './origin-check.ts';
import type { ReceiptLog } from './receipt-log.ts';

/** Largest request body the proxy reads (the parent refuses more anyway). */
export const MAX_PROXY_BODY_BYTES = 32 * 1024 * 1024;

/** Inner request headers that describe a body and pass through. */
const BODY_HEADERS = ['content-type', 'inference-header-content-length'] as const;
/** Inner response headers that pass back to the local client. */
const RESPONSE_HEADERS = [
  'content-type',
  'inference-header-content-length',
  'retry-after',
  'nitro-infer-receipt',
] as const;
const MODEL_IN_PATH = /^\/v2\/models\/([^/?]+)/;
const INFER_PATH = /^\/v2\/models\/[^/?]+(?:\/versions\/[^/?]+)?\/infer(?:\?|$)/;

export interface ProxyOptions {
  readonly client: NitroInferClient;
  readonly host: string;
  readonly port: number;
  /**
   * `--listen-any`: any `Host` is accepted (clients on the network name the machine as they know
   * it), but `Origin` is still checked, so cross-origin browser requests stay refused.
   */
  readonly anyHost?: boolean;
  readonly receipts?: ReceiptLog;
  /** One line per event (attestations, refusals); never request or response content. */
  readonly log?: (line: string) => void;
  readonly clock?: () => number;
}

/** Whether the enclave behind the proxy is attested, as the health route reports it. */
export interface ProxyStatus {
  readonly attested: boolean;
  readonly moduleId?: string;
  readonly verifiedAt?: number;
  readonly error?: { readonly code: string; readonly message: string };
}

export interface RunningProxy {
  readonly url: string;
  status(): ProxyStatus;
  close(): Promise<void>;
}

class ProxyError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** Starts the proxy; attests once before it listens (a failure is reported on /v2/health/ready). */
export async function startProxy(options: ProxyOptions): Promise<RunningProxy> {
  const log = options.log ?? (() => {});
  let status: ProxyStatus = {
    attested: false,
    error: { code: 'ERR_CLIENT_REQUEST_FAILED', message: 'not attested yet' },
  };
  let attesting: Promise<ProxyStatus> | undefined;

  const noteFailure = (error: unknown): ProxyStatus => {
    const { code, message } = describe(error);
    status = { attested: false, error: { code, message } };
    log(`attestation failed: ${code}: ${message}`);
    return status;
  };
  /** One attestation at a time; concurrent callers share it. */
  const attest = (): Promise<ProxyStatus> => {
    attesting ??= options.client
      .attest()
      .then((attestation) => {
        status = { attested: true, moduleId: attestation.moduleId, verifiedAt: attestation.verifiedAt };
        log(`attested ${attestation.moduleId} (${attestation.models.length} models)`);
        return status;
      }, noteFailure)
      .finally(() => {
        attesting = undefined;
      });
    return attesting;
  };

  /**
   * Set after a receipt failed to verify: the enclave may serve another model version than the
   * cached attestation lists (the parent reloaded it), so the next request attests first. The failed
   * request itself is not resent: the enclave may have run it.
   */
  let reattest = false;

  const forward = async (request: IncomingMessage, body: Uint8Array, path: string) => {
    if (!status.attested || reattest) {
      reattest = false;
      const now = await attest();
      if (!now.attested) {
        throw new ProxyError(
          503,
          now.error?.code ?? 'ERR_CLIENT_REQUEST_FAILED',
          `the enclave is not attested, nothing was forwarded: ${now.error?.message ?? ''}`,
        );
      }
    }
    const name = MODEL_IN_PATH.exec(path)?.[1];
    const model = name === undefined ? undefined : safeDecode(name);
    const infer = INFER_PATH.test(path);
    const headers = BODY_HEADERS.flatMap((header): [string, string][] => {
      const value = request.headers[header];
      return typeof value === 'string' ? [[header, value]] : [];
    });
    try {
      const result = await options.client.forward({
        method: request.method ?? 'GET',
        path,
        body,
        headers,
        ...(model === undefined ? {} : { model }),
        requireAttested: infer,
        requireReceipt: infer,
      });
      // The SDK may have re-attested on the way: report what it now holds.
      status = {
        attested: true,
        moduleId: result.attestation.moduleId,
        verifiedAt: result.attestation.verifiedAt,
      };
      if (
        result.receiptEncoded !== undefined &&
        result.receipt !== undefined &&
        options.receipts !== undefined
      ) {
        await options.receipts.record(result.attestation, {
          path,
          receipt: result.receiptEncoded,
          time: result.receipt.time,
        });
      }
      return result;
    } catch (error) {
      if (isNitroInferError(error) && /^ERR_(ATTESTATION|POLICY|CLIENT_BINDING)/.test(error.code)) {
        noteFailure(error);
        throw new ProxyError(
          503,
          error.code,
          `the enclave is not attested, nothing was forwarded: ${error.message}`,
        );
      }
      if (isNitroInferError(error) && error.code === 'ERR_RECEIPT_INVALID') reattest = true;
      throw error;
    }
  };

  /** The `host:port` values that name this proxy; set once it listens (no request comes before). */
  let ownHosts: ReadonlySet<string> = new Set();

  const handle = async (request: IncomingMessage, response: ServerResponse) => {
    const refused = refusal(request, ownHosts, options.anyHost === true);
    if (refused !== undefined) throw new ProxyError(403, 'ERR_HTTP_FORBIDDEN', refused);
    const path = request.url ?? '/';
    const bare = path.split('?')[0];
    if (request.method === 'GET' && bare === '/v2/health/live')
      return sendJson(response, 200, { live: true });
    if (request.method === 'GET' && bare === '/v2/health/ready') {
      const now = status.attested ? status : await attest();
      return now.attested
        ? sendJson(response, 200, {
            ready: true,
            attested: true,
            moduleId: now.moduleId,
            verifiedAt: new Date(now.verifiedAt ?? 0).toISOString(),
          })
        : sendJson(response, 503, {
            ready: false,
            attested: false,
            error: `the enclave is not attested: ${now.error?.message ?? 'unknown'}`,
            code: now.error?.code,
          });
    }
    if (bare !== '/v2' && !bare?.startsWith('/v2/'))
      throw new ProxyError(404, 'ERR_HTTP_NOT_FOUND', 'the proxy serves /v2 routes only');
    if (request.method !== 'GET' && request.method !== 'POST')
      throw new ProxyError(405, 'ERR_HTTP_BAD_REQUEST', 'use GET or POST');
    const body = await readBody(request);
    const result = await forward(request, body, path);
    const headers: Record<string, string> = { 'content-length': String(result.content.byteLength) };
    for (const name of RESPONSE_HEADERS) {
      const value = result.headers.find(([field]) => field === name)?.[1];
      if (value !== undefined) headers[name] = value;
    }
    response.writeHead(result.status, headers);
    response.end(result.content);
  };

  const server = createServer((request, response) => {
    handle(request, response).catch((error: unknown) => {
      const { status: code, body } = errorReply(error);
      if (code >= 500 && !(error instanceof ProxyError)) log(`request failed: ${body.code}: ${body.error}`);
      if (response.headersSent) response.destroy();
      else sendJson(response, code, body);
    });
  });
  await attest();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  ownHosts = hostsNaming(options.host, host, address.port);
  return {
    url: `http://${host}:${address.port}`,
    status: () => status,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

function safeDecode(segment: string): string | undefined {
  try {
    return decodeURIComponent(segment);
  } catch {
    return undefined;
  }
}

async function readBody(request: IncomingMessage): Promise<Uint8Array> {
  const declared = Number(request.headers['content-length'] ?? '0');
  if (declared > MAX_PROXY_BODY_BYTES) throw tooLarge();
  const parts: Buffer[] = [];
  let total = 0;
  for await (const part of request as AsyncIterable<Buffer>) {
    total += part.byteLength;
    if (total > MAX_PROXY_BODY_BYTES) throw tooLarge();
    parts.push(part);
  }
  return new Uint8Array(Buffer.concat(parts, total));
}

const tooLarge = () =>
  new ProxyError(413, 'ERR_HTTP_BODY_TOO_LARGE', `the body is larger than ${MAX_PROXY_BODY_BYTES} bytes`);

function describe(error: unknown): { code: string; message: string } {
  if (isNitroInferError(error)) return { code: error.code, message: error.message };
  if (error instanceof ProxyError) return { code: error.code, message: error.message };
  // fetch's TypeError ("fetch failed") hides the reason in `cause` (ECONNREFUSED, a TLS failure).
  if (error instanceof TypeError && error.cause !== undefined) {
    const cause = error.cause as { code?: unknown; message?: unknown };
    const detail =
      typeof cause.code === 'string' ? cause.code : typeof cause.message === 'string' ? cause.message : '';
    return {
      code: 'ERR_CLIENT_REQUEST_FAILED',
      message: `the parent is unreachable${detail === '' ? '' : ` (${detail})`}`,
    };
  }
  return { code: 'ERR_INTERNAL', message: 'internal error' };
}

/** The OIP error shape, `{"error": "<message>"}`, with our stable code beside it. */
function errorReply(error: unknown): { status: number; body: { error: string; code: string } } {
  if (error instanceof ProxyError)
    return { status: error.status, body: { error: error.message, code: error.code } };
  const { code, message } = describe(error);
  // A receipt that does not verify, or an answer that cannot be read: the enclave's answer is withheld.
  const status = code === 'ERR_INTERNAL' ? 500 : 502;
  return { status, body: { error: message, code } };
}

function sendJson(response: ServerResponse, status: number, value: unknown): void {
  const body = JSON.stringify(value);
  response.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(body),
  });
  response.end(body);
}
