/** `model.load`: starts an upload of a sealed model of `size` bytes (the budget is checked at once). */
import type { ModelManager } from '../models/model-manager.ts';
import type { LinkHandler } from '../server/link-server.ts';
import { MAX_MODEL_NAME_LENGTH, invalidRequest, requiredString } from './fields.ts';
import type { Uploads } from './uploads.ts';

export function modelLoadHandler(models: ModelManager, uploads: Uploads): LinkHandler {
  return async (fields, connection) => {
    const name = requiredString(fields, 'name', MAX_MODEL_NAME_LENGTH);
    const size = fields.get('size');
    if (typeof size !== 'number' || !Number.isSafeInteger(size)) {
      throw invalidRequest('model.load needs a size in bytes');
    }
    await uploads.begin(connection, name, () => models.beginLoad(name, size));
    return {};
  };
}
