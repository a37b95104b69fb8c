/**
 * Model uploads in progress. An upload belongs to the connection that started it: another
 * connection cannot write into it, and a dropped connection abandons its uploads, so nothing is
 * ever half-loaded.
 */
import type { ModelUpload } from '../models/model-manager.ts';
import type { Connection } from '../server/link-server.ts';
import { invalidRequest } from './fields.ts';

export class Uploads {
  readonly #uploads = new Map<string, ModelUpload>();
  // One close hook per connection, however many uploads it starts.
  readonly #hooked = new Set<number>();

  /** Starts `upload` for `name` on `connection`, abandoning one already in progress there. */
  begin(connection: Connection, name: string, upload: ModelUpload): void {
    const key = keyOf(connection, name);
    this.#uploads.get(key)?.abort();
    this.#uploads.set(key, upload);
    if (!this.#hooked.has(connection.id)) {
      this.#hooked.add(connection.id);
      connection.onClose(() => {
        this.#hooked.delete(connection.id);
        for (const [uploadKey, pending] of this.#uploads) {
          if (uploadKey.startsWith(`${connection.id}/`)) {
            pending.abort();
            this.#uploads.delete(uploadKey);
          }
        }
      });
    }
  }

  /** The upload of `name` on `connection`. */
  get(connection: Connection, name: string): ModelUpload {
    const upload = this.#uploads.get(keyOf(connection, name));
    if (upload === undefined)
      throw invalidRequest(`no upload of model ${name} is in progress on this connection`);
    return upload;
  }

  /** Removes and returns the upload, for its last step. */
  take(connection: Connection, name: string): ModelUpload {
    const upload = this.get(connection, name);
    this.#uploads.delete(keyOf(connection, name));
    return upload;
  }

  abort(connection: Connection, name: string): void {
    const key = keyOf(connection, name);
    this.#uploads.get(key)?.abort();
    this.#uploads.delete(key);
  }

  abortAll(): void {
    for (const upload of this.#uploads.values()) upload.abort();
    this.#uploads.clear();
  }
}

function keyOf(connection: Connection, name: string): string {
  return `${connection.id}/${name}`;
}
