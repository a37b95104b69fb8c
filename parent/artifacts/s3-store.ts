/**
 * S3 artifacts through `@aws-sdk/client-s3`: one GetObject per load, streamed (the SDK's body is a
 * Node stream, consumed only as fast as the enclave acknowledges chunks). Integrity while reading:
 * the byte count must equal Content-Length; the SDK validates S3's stored checksum when the object
 * has one (ChecksumMode ENABLED); a single-part, non-KMS-encrypted object's ETag is its MD5 and is
 * checked too. The enclave authenticates every byte anyway — these checks turn a truncated or
 * swapped object into a clear operator error instead of a decryption failure.
 */
import { createHash } from 'node:crypto';
import { GetObjectCommand, S3Client } from '@aws-sdk/client-s3';
import type { S3ClientConfig } from '@aws-sdk/client-s3';
import { ArtifactError } from '../../shared/errors.ts';
import type { ArtifactSource, ArtifactStore, OpenedArtifact } from './artifact-source.ts';
import { formatArtifactSource } from './artifact-source.ts';

/** Options of {@link S3ArtifactStore}. */
export interface S3StoreOptions {
  readonly region: string;
  /** Endpoint override (a local RADOS Gateway, a VPC endpoint). */
  readonly endpoint?: string;
  /** Path-style addressing, which local servers need. */
  readonly forcePathStyle?: boolean;
  readonly credentials?: S3ClientConfig['credentials'];
}

export class S3ArtifactStore implements ArtifactStore {
  readonly #client: S3Client;

  constructor(options: S3StoreOptions) {
    this.#client = new S3Client({
      region: options.region,
      ...(options.endpoint === undefined ? {} : { endpoint: options.endpoint }),
      forcePathStyle: options.forcePathStyle ?? false,
      ...(options.credentials === undefined ? {} : { credentials: options.credentials }),
      maxAttempts: 3,
    });
  }

  async open(source: ArtifactSource): Promise<OpenedArtifact> {
    if (source.kind !== 's3') throw new ArtifactError('ERR_ARTIFACT_SOURCE_INVALID', 'not an S3 source');
    const where = formatArtifactSource(source);
    let response;
    try {
      response = await this.#client.send(
        new GetObjectCommand({
          Bucket: source.bucket,
          Key: source.key,
          ...(source.versionId === undefined ? {} : { VersionId: source.versionId }),
          ChecksumMode: 'ENABLED',
        }),
      );
    } catch (error) {
      throw s3Error(error, where, source.versionId !== undefined);
    }
    const size = response.ContentLength;
    const stream = response.Body as (AsyncIterable<Uint8Array> & { destroy?: () => void }) | undefined;
    if (size === undefined || stream === undefined) {
      stream?.destroy?.();
      throw new ArtifactError(
        'ERR_ARTIFACT_SOURCE_UNAVAILABLE',
        `${where}: the response has no length or body`,
      );
    }
    if (source.versionId !== undefined && response.VersionId !== source.versionId) {
      stream.destroy?.();
      throw new ArtifactError('ERR_ARTIFACT_INTEGRITY', `${where}: S3 answered with another version`);
    }
    const etag = response.ETag?.replace(/"/g, '');
    const md5 =
      etag !== undefined && /^[0-9a-f]{32}$/.test(etag) && response.ServerSideEncryption !== 'aws:kms'
        ? createHash('md5')
        : undefined;
    async function* body(): AsyncIterable<Uint8Array> {
      let read = 0;
      try {
        for await (const chunk of stream as AsyncIterable<Uint8Array>) {
          read += chunk.byteLength;
          md5?.update(chunk);
          yield chunk;
        }
      } catch (error) {
        if ((error as { code?: string }).code?.startsWith('ERR_ARTIFACT') === true) throw error;
        throw new ArtifactError(
          'ERR_ARTIFACT_SOURCE_UNAVAILABLE',
          `${where}: reading failed: ${(error as Error).message.slice(0, 200)}`,
        );
      } finally {
        (stream as { destroy?: () => void }).destroy?.();
      }
      if (read !== size)
        throw new ArtifactError('ERR_ARTIFACT_INTEGRITY', `${where}: read ${read} of ${size} bytes`);
      if (md5 !== undefined && md5.digest('hex') !== etag) {
        throw new ArtifactError('ERR_ARTIFACT_INTEGRITY', `${where}: the bytes do not match the ETag`);
      }
    }
    return {
      size,
      ...(response.VersionId === undefined ? {} : { versionId: response.VersionId }),
      body: body(),
    };
  }

  close(): void {
    this.#client.destroy();
  }
}

/** S3's error names become operator errors that say what to fix. */
function s3Error(error: unknown, where: string, versioned = false): ArtifactError {
  const name = (error as { name?: string }).name ?? '';
  const status = (error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
  const message = ((error as Error).message ?? '').slice(0, 200);
  // RADOS Gateway (and S3 for some requests) answers NoSuchKey for a missing version too.
  if (name === 'NoSuchKey' || name === 'NotFound') {
    return new ArtifactError(
      'ERR_ARTIFACT_NOT_FOUND',
      `${where}: no such object${versioned ? ' or version' : ''}`,
    );
  }
  if (name === 'NoSuchBucket') return new ArtifactError('ERR_ARTIFACT_NOT_FOUND', `${where}: no such bucket`);
  if (name === 'NoSuchVersion' || (name === 'InvalidArgument' && /version/i.test(message))) {
    return new ArtifactError('ERR_ARTIFACT_NOT_FOUND', `${where}: no such version`);
  }
  if (
    name === 'AccessDenied' ||
    name === 'InvalidAccessKeyId' ||
    name === 'SignatureDoesNotMatch' ||
    status === 403
  ) {
    return new ArtifactError('ERR_ARTIFACT_ACCESS_DENIED', `${where}: access denied (${name})`);
  }
  if (status === 404) return new ArtifactError('ERR_ARTIFACT_NOT_FOUND', `${where}: not found`);
  return new ArtifactError('ERR_ARTIFACT_SOURCE_UNAVAILABLE', `${where}: ${name || 'error'}: ${message}`, {
    cause: error,
  });
}
