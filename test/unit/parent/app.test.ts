/**
 * The parent's HTTP edge over real sockets (fetch → Fastify → link → stand-in enclave): statuses and
 * codes of DESIGN.md 4.1, opaque relaying, Prometheus text, and logs without bodies or tokens.
 */
import { randomBytes } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import type { ClientRequest } from 'node:http';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AdminTokens } from '../../../parent/admin-tokens.ts';
import { buildParentApp } from '../../../parent/app.ts';
import type { ParentApp } from '../../../parent/app.ts';
import { parseArtifactSource } from '../../../parent/artifacts/artifact-source.ts';
import { EnclaveLink } from '../../../parent/link/enclave-link.ts';
import { ParentMetrics } from '../../../parent/metrics.ts';
import { ModelRegistry } from '../../../parent/model-registry.ts';
import { OhttpError } from '../../../shared/errors.ts';
import { OHTTP_KEY_PROBLEM_TYPE } from '../../../shared/ohttp/key-config.ts';
import { connectTransport } from '../../../transport/index.ts';
import { FakeEnclave } from '../../helpers/fake-enclave.ts';

const TOKEN = randomBytes(24).toString('base64url');
const CANARY = Buffer.from(`canary-${randomBytes(12).toString('hex')}`);
let enclave: FakeEnclave;
let link: EnclaveLink;
let app: ParentApp;
let url = '';
const logs: string[] = [];

beforeAll(async () => {
  enclave = await FakeEnclave.create();
  // The stand-in reverses the bytes: the relay must pass them through untouched either way.
  enclave.handlers.set('ohttp', async (fields) => {
    const body = fields.get('body') as Uint8Array;
    if (body[0] === 0xee) throw Object.assign(new Error('x'), {});
    if (body[0] === 0xdd) return new Promise(() => {});
    // What the enclave's gateway raises for a request sealed to a key config it does not hold, for
    // one whose key id is known but whose key no longer opens it, and for a malformed request.
    if (body[0] === 0xcc) throw new OhttpError('ERR_OHTTP_KEY_UNKNOWN', 'unknown key');
    if (body[0] === 0xcd) throw new OhttpError('ERR_DECRYPT_FAILED', 'does not open');
    if (body[0] === 0xcb) throw new OhttpError('ERR_OHTTP_MALFORMED', 'too short');
    return { body: Uint8Array.from(body).reverse() };
  });
  enclave.handlers.set('status', async () => ({ models: [] }));
  enclave.handlers.set('ohttp.config', async () => ({ keyConfig: new Uint8Array([0x01, 0x00, 0x20]) }));
  enclave.handlers.set('credentials', async () => ({}));
  enclave.handlers.set('attest', async () => ({
    document: new Uint8Array([1, 2, 3]),
    keyConfig: new Uint8Array([0x01, 0x00, 0x20]),
    receiptKey: new Uint8Array(32),
    models: [],
  }));
  await enclave.start();
  link = new EnclaveLink({
    connect: () => connectTransport(`unix:${enclave.socketPath}`),
    backoff: { initialMs: 10, maxMs: 20 },
  });
  const logger = pino(
    { level: 'info' },
    new Writable({
      write(chunk, _encoding, done) {
        logs.push(String(chunk));
        done();
      },
    }),
  );
  app = await buildParentApp({
    link,
    models: new ModelRegistry({ link, stores: { s3: undefined, file: undefined }, log: () => {} }),
    tokens: AdminTokens.parse(JSON.stringify({ tokens: [TOKEN] }), 'test'),
    metrics: new ParentMetrics(),
    logger,
    limits: {
      ohttpBodyLimitBytes: 64 * 1024,
      adminBodyLimitBytes: 1024,
      requestTimeoutMs: 10_000,
      inferenceTimeoutMs: 300,
      rateLimit: { max: 40, windowMs: 60_000 },
    },
    parseSource: (source) => parseArtifactSource(source, { requireVersion: true, allowFile: false }),
  });
  link.start();
  await link.ready();
  url = await app.listen({ host: '127.0.0.1', port: 0 });
});

afterAll(async () => {
  link.close();
  await app.close();
  await enclave.dispose();
});

async function call(path: string, init: RequestInit = {}) {
  const response = await fetch(url + path, init);
  const text = await response.text();
  let code: string | undefined;
  try {
    code = (JSON.parse(text) as { error?: { code: string } }).error?.code;
  } catch {
    code = undefined;
  }
  return { status: response.status, code, text, headers: response.headers };
}

const ohttp = (body: Uint8Array, type = 'message/ohttp-req') =>
  call('/.well-known/ohttp-gateway', { method: 'POST', headers: { 'content-type': type }, body });

/** POSTs an OHTTP request whose body `send` writes (and may never end); resolves on the reply. */
function postRaw(
  framing: { chunked: true } | { contentLength: number },
  send: (request: ClientRequest) => Promise<void>,
): Promise<{ status: number; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { 'content-type': 'message/ohttp-req' };
    if ('contentLength' in framing) headers['content-length'] = String(framing.contentLength);
    const request = httpRequest(
      url + '/.well-known/ohttp-gateway',
      { method: 'POST', headers },
      (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('end', () => {
          resolve({ status: response.statusCode ?? 0, body: Buffer.concat(chunks) });
          request.destroy();
        });
      },
    );
    request.on('error', reject);
    send(request).catch(reject);
    if ('contentLength' in framing) request.flushHeaders();
  });
}

describe('parent HTTP API', () => {
  it('relays OHTTP bodies as opaque bytes, both ways', async () => {
    const body = Buffer.concat([Buffer.from([0x01]), CANARY, randomBytes(1000)]);
    const response = await fetch(url + '/.well-known/ohttp-gateway', {
      method: 'POST',
      headers: { 'content-type': 'message/ohttp-req' },
      body,
    });
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe('message/ohttp-res');
    expect(Buffer.from(await response.arrayBuffer()).equals(Buffer.from(body).reverse())).toBe(true);
  });

  it('413 over the body limit, 415 for another content type', async () => {
    expect(await ohttp(new Uint8Array(64 * 1024 + 1))).toMatchObject({
      status: 413,
      code: 'ERR_HTTP_BODY_TOO_LARGE',
    });
    expect(await ohttp(new Uint8Array(10), 'application/octet-stream')).toMatchObject({
      status: 415,
      code: 'ERR_HTTP_UNSUPPORTED_MEDIA_TYPE',
    });
  });

  it('relays a body sent in many chunks (kept as its pieces, not joined) byte for byte', async () => {
    const pieces = Array.from({ length: 12 }, () => randomBytes(4096));
    const reply = await postRaw({ chunked: true }, async (request) => {
      for (const piece of pieces) {
        request.write(piece);
        await new Promise((resolve) => setTimeout(resolve, 2));
      }
      request.end();
    });
    expect(reply.status).toBe(200);
    expect(reply.body.equals(Buffer.concat(pieces).reverse())).toBe(true);
  });

  it('refuses a chunked body over the limit as soon as it passes it, while the client is still sending', async () => {
    // The request never ends: only a parser that counts while streaming can answer it.
    const reply = await postRaw({ chunked: true }, async (request) => {
      request.write(Buffer.alloc(40 * 1024));
      request.write(Buffer.alloc(40 * 1024));
    });
    expect(reply.status).toBe(413);
    expect(reply.body.toString()).toContain('ERR_HTTP_BODY_TOO_LARGE');
  });

  it('refuses a declared Content-Length over the limit before any body byte is sent', async () => {
    const reply = await postRaw({ contentLength: 64 * 1024 + 1 }, async () => {});
    expect(reply.status).toBe(413);
  });

  it('504 when the enclave does not answer in time; 500 without detail for its unknown errors', async () => {
    expect(await ohttp(new Uint8Array([0xdd, 1]))).toMatchObject({ status: 504, code: 'ERR_LINK_TIMEOUT' });
    const failed = await ohttp(new Uint8Array([0xee, 1]));
    expect(failed).toMatchObject({ status: 500, code: 'ERR_INTERNAL' });
    expect(failed.text).not.toContain('Error');
  });

  it('an unknown key config is RFC 9458 section 5.3 ohttp-key problem; other decapsulation failures a plain 400', async () => {
    for (const first of [0xcc, 0xcd]) {
      const problem = await ohttp(new Uint8Array([first, 1]));
      expect(problem.status).toBe(400);
      expect(problem.headers.get('content-type')).toMatch(/^application\/problem\+json/);
      expect(JSON.parse(problem.text)).toEqual({
        type: OHTTP_KEY_PROBLEM_TYPE,
        title: 'key configuration unknown',
        status: 400,
        code: 'ERR_OHTTP_KEY_UNKNOWN',
      });
    }
    const malformed = await ohttp(new Uint8Array([0xcb, 1]));
    expect(malformed).toMatchObject({ status: 400, code: 'ERR_HTTP_BAD_REQUEST' });
    expect(malformed.headers.get('content-type')).toMatch(/^application\/json/);
  });

  it('admin routes need the bearer token (401 otherwise)', async () => {
    expect(await call('/admin/models')).toMatchObject({ status: 401, code: 'ERR_HTTP_UNAUTHORIZED' });
    expect(await call('/admin/models', { headers: { authorization: `Bearer ${TOKEN}x` } })).toMatchObject({
      status: 401,
    });
    expect(await call('/admin/models', { headers: { authorization: TOKEN } })).toMatchObject({ status: 401 });
    expect(await call('/admin/models', { headers: { authorization: `Bearer ${TOKEN}` } })).toMatchObject({
      status: 200,
    });
  });

  it('validates bodies, params and queries (400) and pins S3 versions in production', async () => {
    const admin = { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' };
    const put = (name: string, body: unknown) =>
      call(`/admin/models/${name}`, { method: 'PUT', headers: admin, body: JSON.stringify(body) });
    expect(await put('m', { source: 's3://bucket-a/m', extra: 1 })).toMatchObject({
      status: 400,
      code: 'ERR_HTTP_BAD_REQUEST',
    });
    expect(await put('m', { source: 7 })).toMatchObject({ status: 400, code: 'ERR_HTTP_BAD_REQUEST' });
    expect(await put('bad%20name', { source: 's3://bucket-a/m?versionId=1' })).toMatchObject({ status: 400 });
    expect(await put('m', { source: 's3://bucket-a/m' })).toMatchObject({
      status: 400,
      code: 'ERR_ARTIFACT_VERSION_REQUIRED',
    });
    expect(await call('/v1/attestation?nonce=abcd')).toMatchObject({
      status: 400,
      code: 'ERR_HTTP_BAD_REQUEST',
    });
    expect(await call('/v1/attestation?nonce=' + 'ab'.repeat(16) + '&x=1')).toMatchObject({ status: 400 });
  });

  it('404 for unknown models and routes; attestation and key configs pass through', async () => {
    expect(await call('/v2/models/nope/ready')).toMatchObject({ status: 404, code: 'ERR_HTTP_NOT_FOUND' });
    expect(await call('/no/such/route')).toMatchObject({ status: 404, code: 'ERR_HTTP_NOT_FOUND' });
    const attestation = await call('/v1/attestation?nonce=' + 'ab'.repeat(16));
    expect(JSON.parse(attestation.text)).toMatchObject({ document: 'AQID', keyConfig: 'AQAg', models: [] });
    const keys = await fetch(url + '/.well-known/ohttp-gateway');
    expect(keys.headers.get('content-type')).toBe('application/ohttp-keys');
    expect(Buffer.from(await keys.arrayBuffer()).toString('hex')).toBe('0003010020');
  });

  it('/metrics is Prometheus text with link state and route counts, and no content', async () => {
    const { status, text, headers } = await call('/metrics');
    expect(status).toBe(200);
    expect(headers.get('content-type')).toContain('text/plain');
    for (const line of text.split('\n').filter((entry) => entry.length > 0)) {
      expect(line).toMatch(
        /^(# (HELP|TYPE) [a-zA-Z_:][a-zA-Z0-9_:]* .*|[a-zA-Z_:][a-zA-Z0-9_:]*(\{[^}]*\})? -?[0-9.e+-]+|[a-zA-Z_:][a-zA-Z0-9_:]*(\{[^}]*\})? (NaN|[+-]Inf))$/,
      );
    }
    expect(text).toContain('nitro_infer_enclave_link_up 1');
    expect(text).toMatch(
      /nitro_infer_http_requests_total\{route="\/\.well-known\/ohttp-gateway",method="POST",status="200"\} \d+/,
    );
    expect(text).not.toContain(CANARY.toString());
  });

  it('logs never contain bodies or tokens', async () => {
    const joined = logs.join('');
    expect(joined).toContain('"url":"/.well-known/ohttp-gateway"');
    expect(joined).not.toContain(CANARY.toString());
    expect(joined).not.toContain(TOKEN);
  });

  it('503 with Retry-After while the enclave is away, ready again after it returns', async () => {
    const lost = new Promise((resolve) => link.once('state', resolve));
    await enclave.stop();
    await lost;
    const ready = await call('/v2/health/ready');
    expect(ready).toMatchObject({ status: 503, code: 'ERR_LINK_UNAVAILABLE' });
    expect(ready.headers.get('retry-after')).toBe('1');
    expect(await ohttp(new Uint8Array([1, 2]))).toMatchObject({ status: 503, code: 'ERR_LINK_UNAVAILABLE' });
    await enclave.start();
    await link.ready();
    expect(await call('/v2/health/ready')).toMatchObject({ status: 200 });
  });
  it('429 with Retry-After once a client exceeds its budget; health checks are exempt', async () => {
    let last = { status: 0, code: undefined as string | undefined, headers: new Headers() };
    for (let index = 0; index < 45 && last.status !== 429; index++)
      last = await call('/v2/health/live?x=' + index);
    expect(last.status).toBe(200);
    for (let index = 0; index < 45 && last.status !== 429; index++) last = await call('/admin/models');
    expect(last).toMatchObject({ status: 429, code: 'ERR_HTTP_RATE_LIMITED' });
    expect(Number(last.headers.get('retry-after'))).toBeGreaterThan(0);
  });
});
