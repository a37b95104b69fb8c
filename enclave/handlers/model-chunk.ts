/** `model.chunk`: the next piece of an upload's ciphertext. */
import type { LinkHandler } from '../server/link-server.ts';
import { MAX_MODEL_NAME_LENGTH, requiredBytes, requiredString } from './fields.ts';
import type { Uploads } from './uploads.ts';

/** Largest model chunk frame payload (the parent sends 1 MiB). */
export const MAX_MODEL_CHUNK_BYTES = 4 * 1024 * 1024;

export function modelChunkHandler(uploads: Uploads): LinkHandler {
  return async (fields, connection) => {
    const upload = uploads.get(connection, requiredString(fields, 'name', MAX_MODEL_NAME_LENGTH));
    await upload.write(requiredBytes(fields, 'data', 1, MAX_MODEL_CHUNK_BYTES));
    return {};
  };
}
