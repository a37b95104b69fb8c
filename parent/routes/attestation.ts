/**
 * `GET /v1/attestation?nonce=hex` and `GET /.well-known/ohttp-gateway` (DESIGN.md 4.1, RFC 9540).
 * The parent passes the enclave's document through; clients verify it themselves (DESIGN.md 4.4),
 * so nothing here is trusted by anyone.
 */
import { Type } from '@fastify/type-provider-typebox';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { EnclaveLink } from '../link/enclave-link.ts';
import { toPlain } from '../link/plain.ts';
import { BinaryReply, ERROR_REPLIES } from './schemas.ts';

const Base64 = Type.String({ contentEncoding: 'base64' });

export const AttestationReply = Type.Object(
  {
    document: Base64,
    keyConfig: Base64,
    receiptKey: Base64,
    models: Type.Array(
      Type.Object({ name: Type.String(), sha384: Type.String() }, { additionalProperties: false }),
    ),
  },
  { additionalProperties: false },
);

export const attestationRoutes: FastifyPluginAsyncTypebox<{ link: EnclaveLink }> = async (app, { link }) => {
  app.get(
    '/v1/attestation',
    {
      schema: {
        // 16–64 bytes (DESIGN.md 4.1), as lowercase or uppercase hex.
        querystring: Type.Object(
          { nonce: Type.Optional(Type.String({ pattern: '^([0-9a-fA-F]{2}){16,64}$' })) },
          { additionalProperties: false },
        ),
        response: { 200: AttestationReply, ...ERROR_REPLIES },
      },
    },
    async (request) => {
      const nonce = request.query.nonce;
      const fields = await link.request(
        'attest',
        nonce === undefined ? {} : { nonce: Buffer.from(nonce, 'hex') },
      );
      return {
        document: toPlain(fields.get('document')) as string,
        keyConfig: toPlain(fields.get('keyConfig')) as string,
        receiptKey: toPlain(fields.get('receiptKey')) as string,
        models: (toPlain(fields.get('models')) as { name: string; sha384: string }[]) ?? [],
      };
    },
  );

  app.get(
    '/.well-known/ohttp-gateway',
    { schema: { response: { 200: BinaryReply, ...ERROR_REPLIES } } },
    async (_request, reply) => {
      const fields = await link.request('ohttp.config', {});
      const config = fields.get('keyConfig');
      if (!(config instanceof Uint8Array)) throw new Error('the enclave sent no key config');
      // RFC 9540 section 3: each key configuration prefixed with its 2-byte length.
      const body = Buffer.alloc(2 + config.byteLength);
      body.writeUInt16BE(config.byteLength, 0);
      body.set(config, 2);
      return reply.type('application/ohttp-keys').header('cache-control', 'no-store').send(body);
    },
  );
};
