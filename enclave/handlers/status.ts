/** `status`: readiness and the loaded models, as the parent's health routes report them. */
import type { LinkHandler } from '../server/link-server.ts';
import type { ModelManager } from '../models/model-manager.ts';
import { describeModel } from './describe-model.ts';

export function statusHandler(models: ModelManager): LinkHandler {
  return async () => ({ ready: true, models: models.list().map(describeModel) });
}
