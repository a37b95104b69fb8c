/**
 * `ohttp`: one encapsulated request (RFC 9458) in, one encapsulated response out. The parent
 * relays both opaque; failures after decapsulation travel inside the response (STYLE.md 4).
 */
import { MAX_ENCAPSULATED_BYTES } from '../../shared/ohttp/encapsulation.ts';
import type { InferenceGateway } from '../gateway/inference-gateway.ts';
import type { LinkHandler } from '../server/link-server.ts';
import { requiredBytes } from './fields.ts';

export function ohttpHandler(gateway: InferenceGateway): LinkHandler {
  return async (fields) => ({
    body: await gateway.handle(requiredBytes(fields, 'body', 0, MAX_ENCAPSULATED_BYTES)),
  });
}
