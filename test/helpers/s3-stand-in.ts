/**
 * An in-process S3 stand-in for fast unit tests of the artifact store: GetObject with versionId,
 * S3's XML errors, and faults (a truncated body, a wrong ETag, a 500). The real thing — RADOS
 * Gateway — is used by the integration tests.
 */
import { createHash } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface StoredVersion {
  readonly versionId: string;
  readonly body: Buffer;
}

export class S3StandIn {
  readonly objects = new Map<string, StoredVersion[]>();
  fault: 'none' | 'truncate' | 'bad-etag' | 'server-error' | 'forbidden' = 'none';
  readonly #server: http.Server;
  endpoint = '';

  constructor() {
    this.#server = http.createServer((request, response) => this.#handle(request, response));
  }

  async start(): Promise<void> {
    await new Promise<void>((resolve) => this.#server.listen(0, '127.0.0.1', resolve));
    this.endpoint = `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}`;
  }

  async close(): Promise<void> {
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  #handle(request: http.IncomingMessage, response: http.ServerResponse): void {
    const url = new URL(request.url ?? '/', 'http://x');
    const key = decodeURIComponent(url.pathname.slice(1));
    const error = (status: number, code: string) => {
      response.writeHead(status, { 'content-type': 'application/xml' });
      response.end(
        `<?xml version="1.0" encoding="UTF-8"?><Error><Code>${code}</Code><Message>${code}</Message></Error>`,
      );
    };
    if (this.fault === 'server-error') return error(500, 'InternalError');
    if (this.fault === 'forbidden') return error(403, 'AccessDenied');
    const versions = this.objects.get(key);
    if (versions === undefined) return error(404, 'NoSuchKey');
    const wanted = url.searchParams.get('versionId');
    const version = wanted === null ? versions.at(-1) : versions.find((entry) => entry.versionId === wanted);
    if (version === undefined) return error(404, 'NoSuchVersion');
    const md5 = createHash('md5').update(version.body).digest('hex');
    response.writeHead(200, {
      'content-length': String(version.body.byteLength),
      etag: `"${this.fault === 'bad-etag' ? md5.replace(/^./, md5[0] === '0' ? '1' : '0') : md5}"`,
      'x-amz-version-id': version.versionId,
    });
    if (this.fault === 'truncate') {
      response.write(version.body.subarray(0, version.body.byteLength >> 1));
      response.destroy();
      return;
    }
    response.end(version.body);
  }
}
