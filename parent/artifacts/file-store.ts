/** `file://` artifacts for simulation: read in chunks, never whole, size checked at the end. */
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { ArtifactError } from '../../shared/errors.ts';
import type { ArtifactSource, ArtifactStore, OpenedArtifact } from './artifact-source.ts';

export class FileArtifactStore implements ArtifactStore {
  async open(source: ArtifactSource): Promise<OpenedArtifact> {
    if (source.kind !== 'file') throw new ArtifactError('ERR_ARTIFACT_SOURCE_INVALID', 'not a file source');
    const path = source.path;
    let size: number;
    try {
      const info = await stat(path);
      if (!info.isFile()) throw new Error('not a regular file');
      size = info.size;
    } catch (error) {
      throw new ArtifactError('ERR_ARTIFACT_NOT_FOUND', `cannot read ${path}: ${(error as Error).message}`);
    }
    async function* body(): AsyncIterable<Uint8Array> {
      let read = 0;
      try {
        for await (const chunk of createReadStream(path, { highWaterMark: 1024 * 1024 })) {
          read += (chunk as Buffer).byteLength;
          yield chunk as Buffer;
        }
      } catch (error) {
        throw new ArtifactError(
          'ERR_ARTIFACT_SOURCE_UNAVAILABLE',
          `reading ${path} failed: ${(error as Error).message}`,
        );
      }
      if (read !== size)
        throw new ArtifactError('ERR_ARTIFACT_INTEGRITY', `${path} changed while it was read`);
    }
    return { size, body: body() };
  }
}
