/**
 * Open Inference Protocol health routes: plaintext and non-sensitive. `ready` means the link is up
 * and no model is being reloaded; the load balancer's health check points here.
 */
import { Type } from '@fastify/type-provider-typebox';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { HttpError, LinkError } from '../../shared/errors.ts';
import type { EnclaveLink } from '../link/enclave-link.ts';
import type { ModelRegistry } from '../model-registry.ts';
import { ERROR_REPLIES, ModelNameParams } from './schemas.ts';

export const healthRoutes: FastifyPluginAsyncTypebox<{ link: EnclaveLink; models: ModelRegistry }> = async (
  app,
  { link, models },
) => {
  app.get(
    '/v2/health/live',
    { schema: { response: { 200: Type.Object({ live: Type.Boolean() }, { additionalProperties: false }) } } },
    async () => ({ live: true }),
  );
  app.get(
    '/v2/health/ready',
    {
      schema: {
        response: {
          200: Type.Object({ ready: Type.Boolean() }, { additionalProperties: false }),
          ...ERROR_REPLIES,
        },
      },
    },
    async () => {
      if (link.state !== 'ready')
        throw new LinkError('ERR_LINK_UNAVAILABLE', `the enclave link is ${link.state}`);
      if (models.reloading) throw new LinkError('ERR_LINK_UNAVAILABLE', 'models are being reloaded');
      return { ready: true };
    },
  );
  app.get(
    '/v2/models/:name/ready',
    {
      schema: {
        params: ModelNameParams,
        response: {
          200: Type.Object({ name: Type.String(), ready: Type.Boolean() }, { additionalProperties: false }),
          ...ERROR_REPLIES,
        },
      },
    },
    async (request) => {
      const model = models.get(request.params.name);
      if (model === undefined)
        throw new HttpError('ERR_HTTP_NOT_FOUND', `model ${request.params.name} is not loaded`);
      if (link.state !== 'ready' || model.state !== 'ready') {
        throw new LinkError(
          'ERR_LINK_UNAVAILABLE',
          `model ${model.name} is ${model.state === 'ready' ? 'waiting for the enclave link' : model.state}`,
        );
      }
      return { name: model.name, ready: true };
    },
  );
};
