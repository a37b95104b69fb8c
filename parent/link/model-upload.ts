/**
 * Streams a sealed artifact to the enclave as `model.load`, `model.chunk`…, `model.end`
 * (DESIGN.md 4.5). Never buffers the artifact: at most `window` chunks are in flight, and the source
 * is read only as fast as the enclave acknowledges — a slow enclave slows the S3 read, not memory.
 * If the source fails midway the upload is aborted in the enclave, so nothing is half-loaded.
 * Every frame of one upload goes over one connection, the link's bulk lane (the enclave keeps an
 * upload per connection), so small requests on the other connections never queue behind it.
 */
import { LinkError } from '../../shared/errors.ts';
import type { EnclaveLink, LinkFields } from './enclave-link.ts';

/** Chunk size on the wire: large enough for ≥ 32 KiB writes, small enough to interleave requests. */
export const UPLOAD_CHUNK_BYTES = 1024 * 1024;

/** Chunks awaiting acknowledgement (8 MiB at the default size; the enclave pauses reading at 16 MiB). */
export const UPLOAD_WINDOW = 8;

/** A model description the enclave returns after loading. */
export interface LoadedModelDescription {
  readonly name: string;
  readonly sha384: string;
  readonly bytes: number;
  readonly inputs: unknown[];
  readonly outputs: unknown[];
}

/** Uploads `size` bytes from `source` as model `name`; resolves with the enclave's description. */
export async function uploadModel(
  link: EnclaveLink,
  name: string,
  size: number,
  source: AsyncIterable<Uint8Array>,
  options: { internal?: boolean; chunkBytes?: number; window?: number } = {},
): Promise<LoadedModelDescription> {
  const chunkBytes = options.chunkBytes ?? UPLOAD_CHUNK_BYTES;
  const window = options.window ?? UPLOAD_WINDOW;
  const requestOptions = options.internal === true ? { internal: true } : {};
  const channel = link.pin();
  await channel.request('model.load', { name, size }, requestOptions);
  const inFlight = new Set<Promise<LinkFields>>();
  let failure: unknown;
  const send = (data: Uint8Array) => {
    const pending = channel.request('model.chunk', { name, data }, requestOptions);
    inFlight.add(pending);
    pending.then(
      () => inFlight.delete(pending),
      (error: unknown) => {
        inFlight.delete(pending);
        failure ??= error;
      },
    );
  };
  try {
    let sent = 0;
    // Parts of the chunk being assembled. A chunk that lies within one source piece is sent as a
    // view of it (no copy; the frame carries it out of band); only a chunk assembled from several
    // pieces is joined, once.
    let parts: Uint8Array[] = [];
    let partsBytes = 0;
    for await (const piece of source) {
      if (failure !== undefined) break;
      sent += piece.byteLength;
      if (sent > size)
        throw new LinkError('ERR_LINK_REQUEST_INVALID', `the source has more than ${size} bytes`);
      for (let offset = 0; offset < piece.byteLength && failure === undefined;) {
        const take = Math.min(chunkBytes - partsBytes, piece.byteLength - offset);
        const part = piece.subarray(offset, offset + take);
        offset += take;
        if (partsBytes === 0 && take === chunkBytes) send(part);
        else {
          parts.push(part);
          partsBytes += take;
          if (partsBytes < chunkBytes) continue;
          send(Buffer.concat(parts, partsBytes));
          parts = [];
          partsBytes = 0;
        }
        while (inFlight.size >= window && failure === undefined) await Promise.race(inFlight).catch(() => {});
      }
    }
    if (failure === undefined && partsBytes > 0)
      send(parts.length === 1 ? (parts[0] as Uint8Array) : Buffer.concat(parts, partsBytes));
    await Promise.allSettled(inFlight);
    if (failure !== undefined) throw failure;
    if (sent !== size)
      throw new LinkError('ERR_LINK_REQUEST_INVALID', `the source ended after ${sent} of ${size} bytes`);
    const ended = await channel.request('model.end', { name }, { ...requestOptions, timeoutMs: 120_000 });
    return ended.get('model') as LoadedModelDescription;
  } catch (error) {
    await Promise.allSettled(inFlight);
    // Best effort: a dropped connection has already abandoned the upload in the enclave.
    await channel.request('model.abort', { name }, requestOptions).catch(() => {});
    throw error;
  }
}
