/**
 * The image without Docker (DESIGN.md 7): Dockerfile.enclave passes the static check and each rule
 * of the check catches its mutation; two production bundles are byte-identical (so PCR0 is a
 * function of the source); the bundled entry, given the image's own configuration on a machine
 * without `/dev/nsm`, fails closed with a stable code before it listens; the bundled inference
 * worker serves a model.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkDockerfile } from '../../scripts/dockerfile-check.ts';
import { imageConfig, stageImageApp } from '../helpers/enclave-image.ts';
import { PROJECT_ROOT } from '../helpers/fixtures.ts';

const run = promisify(execFile);
const DOCKERFILE = readFileSync(path.join(PROJECT_ROOT, 'Dockerfile.enclave'), 'utf8');

/** Replaces exactly one occurrence, so a mutation that no longer applies fails loudly. */
function mutate(from: string | RegExp, to: string): (text: string) => string {
  return (text) => {
    const matches =
      typeof from === 'string'
        ? text.split(from).length - 1
        : [...text.matchAll(new RegExp(from.source, `${from.flags}g`))].length;
    if (matches !== 1) throw new Error(`mutation target ${String(from)} matches ${matches} times`);
    return text.replace(from, to);
  };
}

const RUNTIME_STAGE = 'FROM ${RUNTIME_IMAGE}\n';

describe('Dockerfile.enclave static check', () => {
  it('passes on the real file', () => {
    expect(checkDockerfile(DOCKERFILE)).toEqual([]);
  });

  it.each([
    [
      'a base image without digest',
      mutate(/(BUILD_IMAGE=node:20-bookworm-slim)@sha256:[0-9a-f]{64}/, '$1'),
      'FROM ${BUILD_IMAGE} is not pinned by digest',
    ],
    [
      'a latest tag',
      mutate('nodejs20-debian12:nonroot@', 'nodejs20-debian12:latest@'),
      'FROM ${RUNTIME_IMAGE} uses latest',
    ],
    [
      'an Alpine base',
      mutate('node:20-bookworm-slim@', 'node:20-alpine@'),
      'FROM ${BUILD_IMAGE} is Alpine (musl): onnxruntime needs glibc',
    ],
    [
      'npm install instead of npm ci',
      mutate('RUN npm ci --ignore-scripts', 'RUN npm install --ignore-scripts'),
      'npm install ignores the lockfile',
    ],
    [
      'no fixed file times',
      mutate(/^ && find \/out -exec touch .*\n/m, ''),
      'file times are not fixed with SOURCE_DATE_EPOCH',
    ],
    [
      'an ADD from a URL',
      mutate('COPY tsconfig.json ./\n', 'COPY tsconfig.json ./\nADD https://example.invalid/x.tgz /x.tgz\n'),
      'ADD downloads from a URL',
    ],
    [
      'a curl download',
      mutate(
        'RUN npm ci --ignore-scripts',
        'RUN curl -fsSLo /x.tgz https://example.invalid/x.tgz && npm ci --ignore-scripts',
      ),
      'the build downloads with curl/wget',
    ],
    ['a root final user', mutate('USER 65532:65532', 'USER root'), 'the final stage runs as root'],
    ['no final user', mutate('USER 65532:65532\n', ''), 'the final stage runs as root'],
    [
      'a package manager at run time',
      mutate(RUNTIME_STAGE, `${RUNTIME_STAGE}RUN apt-get update\n`),
      'the final stage runs a package manager',
    ],
    [
      'a shell-form entry point',
      mutate(/^ENTRYPOINT \[.*\]$/m, 'ENTRYPOINT /nodejs/bin/node /app/dist/enclave/main.mjs'),
      'no exec-form ENTRYPOINT in the final stage',
    ],
    [
      'TypeScript at run time',
      mutate(
        /^ENTRYPOINT \[.*\]$/m,
        'ENTRYPOINT ["/nodejs/bin/node", "--import", "tsx", "/app/enclave/entry.ts"]',
      ),
      'the entry point runs TypeScript, not compiled JavaScript',
    ],
    ['a single stage', mutate(/^FROM \$\{RUNTIME_IMAGE\}\n[^]*$/m, ''), 'not a multi-stage build'],
  ])('catches %s', (_name, apply, problem) => {
    const mutated = apply(DOCKERFILE);
    expect(mutated).not.toBe(DOCKERFILE);
    expect(checkDockerfile(mutated)).toContain(problem);
  });
});

describe('the image configuration', () => {
  it('is the production one: device NSM, link on vsock port 5000, KMS through the parent on CID 3', () => {
    expect(JSON.parse(imageConfig(DOCKERFILE))).toEqual({
      listen: 'vsock:any:5000',
      nsm: 'device',
      kms: { region: 'us-east-1', proxy: 'vsock:3:8000' },
      memoryBudgetMib: 2048,
      inferenceWorkers: 0,
      logLevel: 'info',
    });
  });
});

async function treeDigests(directory: string): Promise<Map<string, string>> {
  const digests = new Map<string, string>();
  for (const name of (await readdir(directory, { recursive: true })).sort()) {
    const file = path.join(directory, name);
    if (name.endsWith('.mjs'))
      digests.set(
        name,
        createHash('sha256')
          .update(await readFile(file))
          .digest('hex'),
      );
  }
  return digests;
}

describe('the production bundle', () => {
  let work: string;
  beforeAll(async () => {
    work = await mkdtemp(path.join(os.tmpdir(), 'nitro-infer-image-'));
    await stageImageApp(path.join(work, 'a'));
    await stageImageApp(path.join(work, 'b'), { probe: 'test/helpers/pool-probe.ts' });
  }, 120_000);
  afterAll(async () => {
    await rm(work, { recursive: true, force: true });
  });

  it('is byte-identical across builds and carries no path of the checkout', async () => {
    const first = await treeDigests(path.join(work, 'a', 'dist', 'enclave'));
    const again = path.join(work, 'again');
    await stageImageApp(again);
    expect(await treeDigests(path.join(again, 'dist', 'enclave'))).toEqual(first);
    expect([...first.keys()]).toEqual(['inference-worker.mjs', 'main.mjs']);
    for (const name of first.keys()) {
      expect(readFileSync(path.join(work, 'a', 'dist', 'enclave', name), 'utf8')).not.toContain(PROJECT_ROOT);
    }
    // Control: the comparison sees a different tree (the probe build), whose shipped files are
    // nevertheless the production ones — so what the probe runs is what the image runs.
    const probeBuild = await treeDigests(path.join(work, 'b', 'dist', 'enclave'));
    expect(probeBuild).not.toEqual(first);
    expect(probeBuild.get('main.mjs')).toBe(first.get('main.mjs'));
    expect(probeBuild.get('inference-worker.mjs')).toBe(first.get('inference-worker.mjs'));
  }, 120_000);

  it('keeps only the linux-x64 native binaries', async () => {
    const bin = path.join(work, 'a', 'node_modules', 'onnxruntime-node', 'bin');
    const kept = (await readdir(bin, { recursive: true })).filter((name) => name.split(path.sep).length <= 3);
    expect(kept.sort()).toEqual(
      ['napi-v6', 'napi-v6/linux', 'napi-v6/linux/x64'].map((p) => p.split('/').join(path.sep)),
    );
    expect(existsSync(path.join(work, 'a', 'node_modules', '@koromix', 'koffi-linux-x64', 'musl_x64'))).toBe(
      false,
    );
  });

  it('fails closed without /dev/nsm: exit 1, ERR_NSM_INTERNAL, nothing listening', async () => {
    expect(existsSync('/dev/nsm')).toBe(false);
    const app = path.join(work, 'a');
    const socket = path.join(work, 'link.sock');
    // The image's configuration, with the two vsock addresses moved to Unix sockets so that the NSM
    // is the only seam missing on this host (vsock connect() must never run here).
    const result = await run(
      process.execPath,
      [path.join(app, 'dist/enclave/main.mjs'), '--config', path.join(app, 'enclave.json')],
      {
        cwd: app,
        env: {
          PATH: process.env.PATH ?? '',
          NODE_ENV: 'production',
          NITRO_INFER_LISTEN: `unix:${socket}`,
          NITRO_INFER_KMS_PROXY: `unix:${path.join(work, 'kms.sock')}`,
        },
        timeout: 60_000,
      },
    ).then(
      () => ({ code: 0, stderr: '' }),
      (error: { code: number; stderr: string }) => ({ code: error.code, stderr: error.stderr }),
    );
    expect(result.code).toBe(1);
    const line = JSON.parse(result.stderr.trim().split('\n').at(-1) ?? '{}') as Record<string, unknown>;
    expect(line).toMatchObject({ event: 'enclave.start_failed', code: 'ERR_NSM_INTERNAL' });
    expect(String(line.reason)).toContain('/dev/nsm');
    expect(existsSync(socket)).toBe(false);
  }, 90_000);

  it('the bundled worker serves a model (dense layer: [1, 1] · [[1, 2], [3, 4]] + [0, 1] = [4, 7])', async () => {
    const app = path.join(work, 'b');
    const { stdout } = await run(process.execPath, [path.join(app, 'dist/enclave/probe.mjs')], {
      cwd: app,
      timeout: 60_000,
    });
    expect(JSON.parse(stdout.trim())).toEqual([4, 7]);
  }, 90_000);
});
