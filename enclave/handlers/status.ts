/**
 * `status`: readiness and the loaded models, as the parent's health routes report them; which
 * models lost sessions in a replaced worker (`lost`, to be streamed again), the workers, and the
 * memory budget (sizes only, which the parent knows anyway from the artifacts it streamed).
 */
import type { InferencePool } from '../inference/pool.ts';
import type { MemoryBudget } from '../models/memory-budget.ts';
import type { ModelManager } from '../models/model-manager.ts';
import type { LinkHandler } from '../server/link-server.ts';
import { describeModel } from './describe-model.ts';

export function statusHandler(
  models: ModelManager,
  pool: InferencePool,
  budget: MemoryBudget,
  draining: () => boolean = () => false,
): LinkHandler {
  return async () => ({
    // False from the start of a drain (SIGTERM): the enclave finishes what it has, takes nothing new.
    ready: !draining(),
    draining: draining(),
    models: models.list().map((model) => ({
      ...describeModel(model),
      sessions: pool.sessions(model.identity.name),
    })),
    lost: pool.lostModels(),
    workers: pool.workers,
    memory: { limitBytes: budget.limitBytes, usedBytes: budget.usedBytes, bufferBytes: budget.bufferBytes },
  });
}
