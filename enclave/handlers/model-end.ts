/** `model.end`: the upload is complete; authenticate, check the digest, build the session. */
import type { LinkHandler, Log } from '../server/link-server.ts';
import { describeModel } from './describe-model.ts';
import { MAX_MODEL_NAME_LENGTH, requiredString } from './fields.ts';
import type { Uploads } from './uploads.ts';

export function modelEndHandler(uploads: Uploads, log: Log): LinkHandler {
  return async (fields, connection) => {
    const upload = uploads.take(connection, requiredString(fields, 'name', MAX_MODEL_NAME_LENGTH));
    const model = await upload.end();
    log('info', 'model.loaded', { model: model.identity.name, bytes: model.sizeBytes });
    return { model: describeModel(model) };
  };
}
