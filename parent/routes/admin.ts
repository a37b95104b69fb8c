/**
 * Operator routes: load, unload and list models. Bearer tokens (parent/admin-tokens.ts) checked in
 * constant time before the body is looked at.
 */
import { Type } from '@fastify/type-provider-typebox';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { HttpError } from '../../shared/errors.ts';
import type { AdminTokens } from '../admin-tokens.ts';
import type { ArtifactSource } from '../artifacts/artifact-source.ts';
import { MAX_SOURCE_LENGTH } from '../artifacts/artifact-source.ts';
import type { ModelRegistry } from '../model-registry.ts';
import { ERROR_REPLIES, ModelNameParams } from './schemas.ts';

const RegisteredModelSchema = Type.Object(
  {
    name: Type.String(),
    source: Type.String(),
    versionId: Type.Optional(Type.String()),
    state: Type.Union([
      Type.Literal('loading'),
      Type.Literal('ready'),
      Type.Literal('failed'),
      Type.Literal('unavailable'),
    ]),
    link: Type.String(),
    error: Type.Optional(Type.String()),
    description: Type.Optional(
      Type.Object(
        {
          name: Type.String(),
          sha384: Type.String(),
          bytes: Type.Number(),
          inputs: Type.Array(Type.Unknown()),
          outputs: Type.Array(Type.Unknown()),
        },
        { additionalProperties: false },
      ),
    ),
  },
  { additionalProperties: false },
);

export const adminRoutes: FastifyPluginAsyncTypebox<{
  models: ModelRegistry;
  tokens: AdminTokens;
  parseSource: (source: string) => ArtifactSource;
}> = async (app, { models, tokens, parseSource }) => {
  // preParsing: after the rate limiter (a route-level onRequest hook, so token guessing is
  // throttled) and before any body of an unauthenticated request is read.
  app.addHook('preParsing', async (request) => {
    if (!tokens.verify(request.headers.authorization)) {
      throw new HttpError('ERR_HTTP_UNAUTHORIZED', 'a valid admin bearer token is required');
    }
  });

  app.get(
    '/admin/models',
    {
      schema: {
        response: { 200: Type.Object({ models: Type.Array(RegisteredModelSchema) }), ...ERROR_REPLIES },
      },
    },
    async () => ({ models: models.list() }),
  );

  app.put(
    '/admin/models/:name',
    {
      schema: {
        params: ModelNameParams,
        body: Type.Object(
          { source: Type.String({ minLength: 1, maxLength: MAX_SOURCE_LENGTH }) },
          { additionalProperties: false },
        ),
        response: { 200: Type.Object({ model: RegisteredModelSchema }), ...ERROR_REPLIES },
      },
    },
    async (request) => {
      if (request.headers['content-type']?.split(';')[0] !== 'application/json') {
        throw new HttpError('ERR_HTTP_UNSUPPORTED_MEDIA_TYPE', 'the body must be application/json');
      }
      const source = parseSource(request.body.source);
      return { model: await models.load(request.params.name, source) };
    },
  );

  app.delete(
    '/admin/models/:name',
    {
      schema: {
        params: ModelNameParams,
        response: { 200: Type.Object({ unloaded: Type.String() }), ...ERROR_REPLIES },
      },
    },
    async (request) => {
      await models.unload(request.params.name);
      return { unloaded: request.params.name };
    },
  );
};
