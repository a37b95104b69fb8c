/** `model.unload`: drops a model's sessions from every worker. */
import type { ModelManager } from '../models/model-manager.ts';
import type { LinkHandler, Log } from '../server/link-server.ts';
import { MAX_MODEL_NAME_LENGTH, requiredString } from './fields.ts';

export function modelUnloadHandler(models: ModelManager, log: Log): LinkHandler {
  return async (fields) => {
    const name = requiredString(fields, 'name', MAX_MODEL_NAME_LENGTH);
    await models.unload(name);
    log('info', 'model.unloaded', { model: name });
    return {};
  };
}
