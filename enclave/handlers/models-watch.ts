/**
 * `models.watch`: answers with the models that lost sessions (a worker died and was replaced; the
 * enclave keeps no plaintext, so only the parent can stream them again) as soon as there are any,
 * or after `waitMs` with none. The link has no enclave-initiated frames; a request the parent keeps
 * open is how the enclave tells it at once.
 */
import type { InferencePool } from '../inference/pool.ts';
import type { LinkHandler } from '../server/link-server.ts';
import { invalidRequest } from './fields.ts';

/** Longest a watch is held open (the parent's request timeout must be longer). */
export const MAX_WATCH_MS = 30_000;

/** Watches held open at once, over all connections; beyond this a watch answers at once. */
export const MAX_WATCHERS = 8;

export function modelsWatchHandler(pool: InferencePool): LinkHandler {
  let watchers = 0;
  return async (fields) => {
    const waitMs = fields.get('waitMs') ?? 0;
    if (typeof waitMs !== 'number' || !Number.isSafeInteger(waitMs) || waitMs < 0 || waitMs > MAX_WATCH_MS)
      throw invalidRequest(`models.watch needs waitMs from 0 to ${MAX_WATCH_MS}`);
    if (pool.lostModels().length === 0 && waitMs > 0 && watchers < MAX_WATCHERS) {
      watchers += 1;
      try {
        await new Promise<void>((resolve) => {
          const done = () => {
            clearTimeout(timer);
            stop();
            resolve();
          };
          const timer = setTimeout(done, waitMs);
          timer.unref();
          const stop = pool.onChange(() => {
            if (pool.lostModels().length > 0) done();
          });
        });
      } finally {
        watchers -= 1;
      }
    }
    return { lost: pool.lostModels() };
  };
}
