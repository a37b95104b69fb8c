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

  /**
   * Starts an upload for `name` on `connection` (abandoning one already in progress there) once
   * `start` resolves. Call it synchronously from the handler: the close hook is in place before
   * anything is awaited, so an upload whose connection closed meanwhile is abandoned, not kept.
   */
  async begin(connection: Connection, name: string, start: () => Promise<ModelUpload>): Promise<void> {
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
    const upload = await start();
    if (!this.#hooked.has(connection.id)) {
      upload.abort();
      throw invalidRequest('the connection closed before the upload started');
    }
    const key = keyOf(connection, name);
    this.#uploads.get(key)?.abort();
    this.#uploads.set(key, upload);
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
