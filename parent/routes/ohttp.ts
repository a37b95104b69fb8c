/**
 * The Oblivious HTTP relay (RFC 9458; DESIGN.md 2, "Infer"): `message/ohttp-req` in, relayed over
 * the link as opaque bytes, `message/ohttp-res` out. The parent learns sizes and timing only. A
 * request the enclave cannot decapsulate is a 400 (RFC 9458 section 5.2); one sealed to a key
 * config the enclave does not hold (an unknown key id or suite, or a key id whose key no longer
 * opens it) is answered with the `ohttp-key` problem of section 5.3, the one signal on which the
 * SDK re-attests. Anything that happens after decapsulation travels inside the encrypted response
 * and is invisible here.
 */
import { Readable } from 'node:stream';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { HttpError, NitroInferError } from '../../shared/errors.ts';
import { PayloadPieces } from '../../shared/frames.ts';
import { OHTTP_KEY_PROBLEM_TYPE, PROBLEM_JSON_TYPE } from '../../shared/ohttp/key-config.ts';
import type { EnclaveLink } from '../link/enclave-link.ts';
import type { ParentMetrics } from '../metrics.ts';
import { ohttpBodyParser } from './ohttp-body.ts';
import { BinaryReply, ERROR_REPLIES } from './schemas.ts';

export const OHTTP_REQUEST_TYPE = 'message/ohttp-req';
export const OHTTP_RESPONSE_TYPE = 'message/ohttp-res';
// Serialised once and sent as bytes: the route's 400 schema is our `{error}` shape, which Fastify
// would otherwise apply to it. `code` is an extension member (RFC 9457 section 3.2).
const OHTTP_KEY_PROBLEM_BODY = Buffer.from(
  JSON.stringify({
    type: OHTTP_KEY_PROBLEM_TYPE,
    title: 'key configuration unknown',
    status: 400,
    code: 'ERR_OHTTP_KEY_UNKNOWN',
  }),
);

/** A stream of the pieces (Fastify sends a stream as it comes; it has no form for a list of buffers). */
function piecesStream(body: PayloadPieces): Readable {
  return new Readable({
    read() {
      for (const piece of body.pieces) this.push(piece);
      this.push(null);
    },
  });
}

export const ohttpRoutes: FastifyPluginAsyncTypebox<{
  link: EnclaveLink;
  metrics: ParentMetrics;
  bodyLimit: number;
  timeoutMs: number;
}> = async (app, { link, metrics, bodyLimit, timeoutMs }) => {
  app.addContentTypeParser(OHTTP_REQUEST_TYPE, { bodyLimit }, ohttpBodyParser(bodyLimit));
  app.post(
    '/.well-known/ohttp-gateway',
    { bodyLimit, schema: { response: { 200: BinaryReply, ...ERROR_REPLIES } } },
    async (request, reply) => {
      if (
        request.headers['content-type'] !== OHTTP_REQUEST_TYPE ||
        !(request.body instanceof PayloadPieces)
      ) {
        throw new HttpError('ERR_HTTP_UNSUPPORTED_MEDIA_TYPE', `the body must be ${OHTTP_REQUEST_TYPE}`);
      }
      metrics.relayedBytes.inc({ direction: 'request' }, request.body.byteLength);
      let fields;
      try {
        fields = await link.request('ohttp', { body: request.body }, { timeoutMs });
      } catch (error) {
        const code = (error as { code?: string }).code;
        // Key ids are one byte, so a restarted enclave's new key can reuse the old id: then the
        // request names a known id and fails to open, which is the same stale key config.
        if (code === 'ERR_OHTTP_KEY_UNKNOWN' || code === 'ERR_DECRYPT_FAILED') {
          // RFC 9458 mandates no status for the problem; its example, and the status every other
          // refusal of this route uses, is 400. The body is unauthenticated (see docs/protocols.md).
          return reply
            .code(400)
            .type(PROBLEM_JSON_TYPE)
            .header('cache-control', 'no-store')
            .send(OHTTP_KEY_PROBLEM_BODY);
        }
        if (code?.startsWith('ERR_OHTTP_') === true) {
          throw new HttpError('ERR_HTTP_BAD_REQUEST', 'the gateway cannot decapsulate this request', {
            cause: error as NitroInferError,
          });
        }
        throw error;
      }
      const body = fields.get('body');
      if (!(body instanceof Uint8Array) && !(body instanceof PayloadPieces)) {
        throw new Error('the enclave sent no response body');
      }
      metrics.relayedBytes.inc({ direction: 'response' }, body.byteLength);
      reply.type(OHTTP_RESPONSE_TYPE).header('cache-control', 'no-store');
      if (body instanceof Uint8Array)
        return reply.send(Buffer.from(body.buffer, body.byteOffset, body.byteLength));
      // A large body, in the link's socket chunks: written as they are, not joined first.
      return reply.header('content-length', body.byteLength).send(piecesStream(body));
    },
  );
};
