/**
 * Where sealed artifacts come from (DESIGN.md 2, "Load a model"): `s3://bucket/key?versionId=…`
 * in production, `file:///path` in simulation. The parent reads ciphertext only; it cannot open it.
 */
import { ArtifactError } from '../../shared/errors.ts';

/** A parsed artifact location. */
export type ArtifactSource =
  | { readonly kind: 's3'; readonly bucket: string; readonly key: string; readonly versionId?: string }
  | { readonly kind: 'file'; readonly path: string };

/** An opened artifact: its size and a stream of its bytes, checked as they pass. */
export interface OpenedArtifact {
  readonly size: number;
  /** The object's version (S3), reported to the operator. */
  readonly versionId?: string;
  /** The bytes; throws {@link ArtifactError} if they differ from the announced size or ETag. */
  readonly body: AsyncIterable<Uint8Array>;
}

/** Reads artifacts of one kind. */
export interface ArtifactStore {
  open(source: ArtifactSource): Promise<OpenedArtifact>;
}

/** Longest source string accepted from the admin API. */
export const MAX_SOURCE_LENGTH = 2048;

/** S3 bucket names (AWS rules, simplified to the safe subset) and version ids (opaque, ≤ 1024). */
const BUCKET_PATTERN = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;
const VERSION_PATTERN = /^[A-Za-z0-9._+/=-]{1,1024}$/;

/**
 * Parses a source. `requireVersion` (production) refuses S3 sources without a pinned version;
 * `allowFile` (simulation only) admits `file://` paths.
 */
export function parseArtifactSource(
  text: string,
  options: { requireVersion: boolean; allowFile: boolean },
): ArtifactSource {
  if (text.length === 0 || text.length > MAX_SOURCE_LENGTH)
    throw invalid(`a source has 1 to ${MAX_SOURCE_LENGTH} characters`);
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw invalid('the source is not a URL (s3://bucket/key?versionId=…)');
  }
  if (url.protocol === 'file:') {
    if (!options.allowFile) throw invalid('file:// sources are only allowed in simulation mode');
    if (url.host !== '' || url.search !== '') throw invalid('a file source is file:///absolute/path');
    return { kind: 'file', path: decodeURIComponent(url.pathname) };
  }
  if (url.protocol !== 's3:') throw invalid('the source must be s3://bucket/key?versionId=…');
  const bucket = url.hostname;
  const key = decodeURIComponent(url.pathname.slice(1));
  if (!BUCKET_PATTERN.test(bucket)) throw invalid(`${JSON.stringify(bucket)} is not an S3 bucket name`);
  if (key.length === 0 || key.length > 1024) throw invalid('the S3 key must have 1 to 1024 characters');
  for (const name of url.searchParams.keys()) {
    if (name !== 'versionId') throw invalid(`unknown source parameter ${JSON.stringify(name)}`);
  }
  const versionId = url.searchParams.get('versionId') ?? undefined;
  if (versionId !== undefined && !VERSION_PATTERN.test(versionId))
    throw invalid('the versionId is malformed');
  if (versionId === undefined && options.requireVersion) {
    throw new ArtifactError(
      'ERR_ARTIFACT_VERSION_REQUIRED',
      'production mode loads pinned versions only: add ?versionId=… (printed by `nitro-infer seal`)',
    );
  }
  return versionId === undefined ? { kind: 's3', bucket, key } : { kind: 's3', bucket, key, versionId };
}

/** The canonical string of a source, for listings and logs (no secrets in it). */
export function formatArtifactSource(source: ArtifactSource): string {
  if (source.kind === 'file') return `file://${source.path}`;
  const key = source.key.split('/').map(encodeURIComponent).join('/');
  return `s3://${source.bucket}/${key}${source.versionId === undefined ? '' : `?versionId=${encodeURIComponent(source.versionId)}`}`;
}

function invalid(message: string): ArtifactError {
  return new ArtifactError('ERR_ARTIFACT_SOURCE_INVALID', message);
}
