/**
 * The cluster listener (`cluster.listen`, port 8444 by default): the routes peer parents call to
 * move the cluster key between enclaves (docs/protocols.md "Cluster key"). A separate Fastify
 * instance on its own port, so it is never behind the public load balancer (infra/ opens it only
 * from the instances' own security group); bounded bodies, strict schemas, rate-limited.
 *
 *   GET  /cluster/v1/status     the enclave's cluster.status (public facts)
 *   POST /cluster/v1/challenge  the enclave's cluster.challenge
 *   POST /cluster/v1/share      {document} → the enclave's cluster.share
 */
import rateLimit from '@fastify/rate-limit';
import { Type } from '@fastify/type-provider-typebox';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import Fastify from 'fastify';
import type { FastifyBaseLogger, FastifyInstance } from 'fastify';
import { installErrorReplies, rateLimitedError } from '../fastify-errors.ts';
import type { EnclaveLink } from '../link/enclave-link.ts';
import { ERROR_REPLIES } from '../routes/schemas.ts';
import {
  ChallengeReply,
  PEER_BODY_LIMIT_BYTES,
  ShareBody,
  ShareReply,
  StatusReply,
  statusReply,
} from './peer-messages.ts';

/** Requests per peer address per minute: a fleet syncs every ~30 s, an exchange is 3 requests. */
export const PEER_RATE_LIMIT_PER_MINUTE = 120;

export interface PeerAppOptions {
  readonly link: EnclaveLink;
  readonly logger: FastifyBaseLogger | boolean;
  readonly requestTimeoutMs?: number;
}

export type PeerApp = FastifyInstance;

export async function buildPeerApp(options: PeerAppOptions): Promise<PeerApp> {
  const app = Fastify({
    ...(typeof options.logger === 'boolean'
      ? { logger: options.logger }
      : { loggerInstance: options.logger }),
    bodyLimit: PEER_BODY_LIMIT_BYTES,
    requestTimeout: options.requestTimeoutMs ?? 10_000,
    connectionTimeout: options.requestTimeoutMs ?? 10_000,
    return503OnClosing: true,
    ajv: { customOptions: { coerceTypes: false, removeAdditional: false, allErrors: false } },
  }).withTypeProvider<TypeBoxTypeProvider>();

  installErrorReplies(app as unknown as FastifyInstance);
  await app.register(rateLimit, {
    max: PEER_RATE_LIMIT_PER_MINUTE,
    timeWindow: 60_000,
    errorResponseBuilder: rateLimitedError,
  });

  const link = options.link;
  app.get('/cluster/v1/status', { schema: { response: { 200: StatusReply, ...ERROR_REPLIES } } }, async () =>
    statusReply(await link.request('cluster.status', {})),
  );
  app.post(
    '/cluster/v1/challenge',
    {
      schema: {
        body: Type.Optional(Type.Object({}, { additionalProperties: false })),
        response: { 200: ChallengeReply, ...ERROR_REPLIES },
      },
    },
    async () => {
      const fields = await link.request('cluster.challenge', {});
      return { challenge: base64(fields.get('challenge')) };
    },
  );
  app.post(
    '/cluster/v1/share',
    { schema: { body: ShareBody, response: { 200: ShareReply, ...ERROR_REPLIES } } },
    async (request) => {
      const fields = await link.request('cluster.share', {
        document: Buffer.from(request.body.document, 'base64'),
      });
      return {
        document: base64(fields.get('document')),
        enc: base64(fields.get('enc')),
        ciphertext: base64(fields.get('ciphertext')),
      };
    },
  );
  return app as unknown as PeerApp;
}

function base64(value: unknown): string {
  if (!(value instanceof Uint8Array)) throw new Error('the enclave answered without a byte field');
  return Buffer.from(value).toString('base64');
}
