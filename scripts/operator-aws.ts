/**
 * AWS clients of the operator's verbs (`seal`): KMS with an optional endpoint
 * and extra CA (the simulator's, for `npm start`), and uploads to S3 that report the version id.
 * Credentials come from the standard provider chain.
 */
import { readFile } from 'node:fs/promises';
import https from 'node:https';
import type { Readable } from 'node:stream';
import { KMS } from '@aws-sdk/client-kms';
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import { CliError } from '../shared/errors.ts';

/** The KMS client for `--region`, `--kms-endpoint` and `--kms-ca`. */
export async function operatorKms(region: string, endpoint?: string, caFile?: string): Promise<KMS> {
  const ca = caFile === undefined ? undefined : await readFile(caFile, 'utf8');
  return new KMS({
    region,
    ...(endpoint === undefined ? {} : { endpoint }),
    ...(ca === undefined
      ? {}
      : { requestHandler: new NodeHttpHandler({ httpsAgent: new https.Agent({ ca }) }) }),
  });
}

/**
 * Uploads to `s3://bucket/key` and returns the source string to load it by: with `?versionId=`
 * when the bucket is versioned (production parents accept nothing else).
 */
export async function uploadToS3(
  target: string,
  body: Uint8Array | Readable,
  options: { region: string; endpoint?: string; contentLength?: number; contentType?: string },
): Promise<{ source: string; versionId?: string }> {
  const url = new URL(target);
  const s3 = new S3Client({
    region: options.region,
    // A streamed body would otherwise be sent aws-chunked with a trailing CRC32, which not every
    // S3 implementation accepts (measured: RADOS Gateway answers 411 MissingContentLength);
    // Content-Length is given instead, and the enclave authenticates every byte of an artifact.
    requestChecksumCalculation: 'WHEN_REQUIRED',
    ...(options.endpoint === undefined ? {} : { endpoint: options.endpoint, forcePathStyle: true }),
  });
  try {
    const put = await s3
      .send(
        new PutObjectCommand({
          Bucket: url.hostname,
          Key: decodeURIComponent(url.pathname.slice(1)),
          Body: body,
          ...(options.contentLength === undefined ? {} : { ContentLength: options.contentLength }),
          ...(options.contentType === undefined ? {} : { ContentType: options.contentType }),
        }),
      )
      .catch((error: { name?: string; $metadata?: { httpStatusCode?: number } }) => {
        // The SDK names unparseable S3 errors "UnknownError"; the status says more (403: no permission).
        throw new CliError(
          'ERR_CLI_INPUT',
          `uploading to ${target} failed: ${error.name ?? 'error'} (HTTP ${error.$metadata?.httpStatusCode ?? '?'})`,
        );
      });
    const versionId = put.VersionId;
    return versionId === undefined
      ? { source: target }
      : { source: `${target}?versionId=${encodeURIComponent(versionId)}`, versionId };
  } finally {
    s3.destroy();
  }
}
