/**
 * `infer`: a plaintext V2 JSON request, served only when the service was started with
 * `allowPlaintextInference` (benchmarks and tests of the engine alone); production never registers it.
 */
import { InferenceError } from '../../shared/errors.ts';
import { parseInferenceRequest } from '../../shared/inference/v2.ts';
import type { InferencePool } from '../inference/pool.ts';
import type { LinkHandler } from '../server/link-server.ts';
import { MAX_MODEL_NAME_LENGTH, requiredBytes, requiredString } from './fields.ts';

/** Largest plaintext inference request body accepted over the link. */
export const MAX_INFERENCE_BODY_BYTES = 32 * 1024 * 1024;

export function plaintextInferHandler(pool: InferencePool): LinkHandler {
  return async (fields) => {
    const model = requiredString(fields, 'model', MAX_MODEL_NAME_LENGTH);
    const body = requiredBytes(fields, 'body', 0, MAX_INFERENCE_BODY_BYTES);
    let parsed: unknown;
    try {
      parsed = JSON.parse(Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString('utf8'));
    } catch {
      throw new InferenceError('ERR_INFERENCE_INPUT_INVALID', 'the request body is not JSON');
    }
    const response = await pool.infer(model, parseInferenceRequest(parsed));
    return { body: new TextEncoder().encode(JSON.stringify(response)) };
  };
}
