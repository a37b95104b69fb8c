/** Artifact sources: strict parsing; S3 reads by version with S3's errors mapped to operator errors. */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseArtifactSource, formatArtifactSource } from '../../../parent/artifacts/artifact-source.ts';
import { S3ArtifactStore } from '../../../parent/artifacts/s3-store.ts';
import { codeOf, codeOfAsync } from '../../helpers/codes.ts';
import { S3StandIn } from '../../helpers/s3-stand-in.ts';

const production = { requireVersion: true, allowFile: false };
const simulation = { requireVersion: false, allowFile: true };

describe('artifact sources', () => {
  it('parses s3 sources with a version, and file sources in simulation', () => {
    expect(
      parseArtifactSource('s3://models-bucket/path/to/m.sealed?versionId=abc.DEF_1', production),
    ).toEqual({
      kind: 's3',
      bucket: 'models-bucket',
      key: 'path/to/m.sealed',
      versionId: 'abc.DEF_1',
    });
    expect(parseArtifactSource('file:///tmp/m.sealed', simulation)).toEqual({
      kind: 'file',
      path: '/tmp/m.sealed',
    });
    const source = parseArtifactSource('s3://models-bucket/a%20b/c?versionId=v1', production);
    expect(parseArtifactSource(formatArtifactSource(source), production)).toEqual(source);
  });

  it.each([
    ['s3://models-bucket/m.sealed', production, 'ERR_ARTIFACT_VERSION_REQUIRED'],
    ['file:///tmp/m.sealed', production, 'ERR_ARTIFACT_SOURCE_INVALID'],
    ['https://example.com/m', simulation, 'ERR_ARTIFACT_SOURCE_INVALID'],
    ['s3://Bad_Bucket/m?versionId=1', production, 'ERR_ARTIFACT_SOURCE_INVALID'],
    ['s3://models-bucket/?versionId=1', production, 'ERR_ARTIFACT_SOURCE_INVALID'],
    ['s3://models-bucket/m?versionId=1&acl=x', production, 'ERR_ARTIFACT_SOURCE_INVALID'],
    ['not a url', simulation, 'ERR_ARTIFACT_SOURCE_INVALID'],
  ])('%s is refused with %s', (text, options, code) => {
    expect(codeOf(() => parseArtifactSource(text, options))).toBe(code);
  });
});

describe('S3 artifact store (in-process stand-in)', () => {
  const s3 = new S3StandIn();
  let store: S3ArtifactStore;
  const one = randomBytes(200_000);
  const two = randomBytes(150_000);

  beforeAll(async () => {
    await s3.start();
    s3.objects.set('models/m.sealed', [
      { versionId: 'v1', body: one },
      { versionId: 'v2', body: two },
    ]);
    store = new S3ArtifactStore({
      region: 'us-east-1',
      endpoint: s3.endpoint,
      forcePathStyle: true,
      credentials: { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'secret' },
    });
  });
  afterAll(async () => {
    store.close();
    await s3.close();
  });

  async function read(source: string): Promise<Buffer> {
    const opened = await store.open(parseArtifactSource(source, production));
    const parts: Uint8Array[] = [];
    for await (const part of opened.body) parts.push(part);
    return Buffer.concat(parts);
  }

  it('reads the pinned version, not the latest', async () => {
    s3.fault = 'none';
    expect((await read('s3://models/m.sealed?versionId=v1')).equals(one)).toBe(true);
    expect((await read('s3://models/m.sealed?versionId=v2')).equals(two)).toBe(true);
  });

  it.each([
    ['s3://models/none.sealed?versionId=v1', 'none', 'ERR_ARTIFACT_NOT_FOUND'],
    ['s3://models/m.sealed?versionId=v9', 'none', 'ERR_ARTIFACT_NOT_FOUND'],
    ['s3://models/m.sealed?versionId=v1', 'forbidden', 'ERR_ARTIFACT_ACCESS_DENIED'],
    ['s3://models/m.sealed?versionId=v1', 'server-error', 'ERR_ARTIFACT_SOURCE_UNAVAILABLE'],
    ['s3://models/m.sealed?versionId=v1', 'truncate', 'ERR_ARTIFACT_SOURCE_UNAVAILABLE'],
    ['s3://models/m.sealed?versionId=v1', 'bad-etag', 'ERR_ARTIFACT_INTEGRITY'],
  ] as const)('%s with fault %s → %s', async (source, fault, code) => {
    s3.fault = fault;
    expect(await codeOfAsync(() => read(source))).toBe(code);
    s3.fault = 'none';
  });
});
