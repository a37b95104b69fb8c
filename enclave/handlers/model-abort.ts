/** `model.abort`: the parent's source failed mid-stream; drop the upload, nothing is half-loaded. */
import type { LinkHandler } from '../server/link-server.ts';
import { MAX_MODEL_NAME_LENGTH, requiredString } from './fields.ts';
import type { Uploads } from './uploads.ts';

export function modelAbortHandler(uploads: Uploads): LinkHandler {
  return async (fields, connection) => {
    uploads.abort(connection, requiredString(fields, 'name', MAX_MODEL_NAME_LENGTH));
    return {};
  };
}
