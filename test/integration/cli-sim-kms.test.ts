/** `nitro-infer sim kms` as a separate process, driven by a plain AWS SDK client. */
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { KMS } from '@aws-sdk/client-kms';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import { describe, expect, it } from 'vitest';
import { PROJECT_ROOT } from '../helpers/fixtures.ts';

describe('nitro-infer sim kms', () => {
  it('prints its connection details as one JSON line and serves the AWS SDK until interrupted', async () => {
    const state = await mkdtemp(path.join(os.tmpdir(), 'nitro-infer-sim-kms-'));
    const child = spawn(
      process.execPath,
      [
        path.join(PROJECT_ROOT, 'bin', 'nitro-infer.js'),
        'sim',
        'kms',
        '--listen',
        '127.0.0.1:0',
        '--state',
        state,
      ],
      {
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    );
    try {
      const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
      const line = (await lines.next()).value as string;
      const info = JSON.parse(line) as {
        endpoint: string;
        caCertPath: string;
        region: string;
        accessKeyId: string;
        secretAccessKey: string;
      };
      expect(Object.keys(info).sort()).toEqual([
        'accessKeyId',
        'caCertPath',
        'endpoint',
        'region',
        'secretAccessKey',
      ]);
      const client = new KMS({
        region: info.region,
        endpoint: info.endpoint,
        credentials: { accessKeyId: info.accessKeyId, secretAccessKey: info.secretAccessKey },
        requestHandler: new NodeHttpHandler({
          httpsAgent: new https.Agent({ ca: await readFile(info.caCertPath, 'utf8') }),
        }),
      });
      const policy = JSON.stringify({
        Version: '2012-10-17',
        Statement: [
          {
            Effect: 'Allow',
            Principal: { AWS: 'arn:aws:iam::111122223333:root' },
            Action: 'kms:*',
            Resource: '*',
          },
        ],
      });
      const key = await client.createKey({ Policy: policy, Description: 'cli test' });
      expect(key.KeyMetadata?.Arn).toMatch(/^arn:aws:kms:us-east-1:\d{12}:key\/[0-9a-f-]{36}$/);
      const random = await client.generateRandom({ NumberOfBytes: 32 });
      expect(random.Plaintext).toHaveLength(32);
    } finally {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGINT');
      expect(await exited).toBe(0);
      await rm(state, { recursive: true, force: true });
    }
  });
});
