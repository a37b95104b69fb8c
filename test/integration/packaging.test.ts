/**
 * The two published packages as a user gets them: `npm pack`, then `npm install <tarball>` into a
 * fresh project with npm 11 (this machine's) and npm 10 (Node 20's own, which runs dependencies'
 * install scripts), then plain Node 20 ESM imports and a NodeNext type check of a consumer.
 *
 * Offline: npm resolves dependency ranges against registry metadata, which `npm ci` never caches,
 * so a loopback registry serves the lockfile's metadata (test/helpers/offline-registry.ts); every
 * tarball comes from the npm cache that `npm ci` filled, and the test fails if npm asked for one.
 */
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HAVE_FIXTURES, PROJECT_ROOT, fixturePath, manifest } from '../helpers/fixtures.ts';
import { startOfflineRegistry } from '../helpers/offline-registry.ts';
import type { OfflineRegistry } from '../helpers/offline-registry.ts';

const run = promisify(execFile);

/** npm 11: the one installed beside this Node (not node_modules/.bin's, which is npm 10). */
const NPM_11 = path.join(
  path.dirname(process.execPath),
  '..',
  'lib',
  'node_modules',
  'npm',
  'bin',
  'npm-cli.js',
);
/** npm 10, the devDependency that stands in for the npm Node 20 ships. */
const NPM_10 = path.join(PROJECT_ROOT, 'node_modules', 'npm', 'bin', 'npm-cli.js');
const NPMS = [
  ['npm 11', NPM_11],
  ['npm 10', NPM_10],
] as const;

/** What the client package must never pull in: the server's heavy or privileged dependencies. */
const SERVER_ONLY = ['onnxruntime-node', 'fastify', '@aws-sdk', 'aws-cdk-lib', 'koffi', 'tsx', 'esbuild'];

/** A user's environment: none of the npm_* variables `npm test` sets for its scripts. */
function userEnvironment(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (!/^npm_/i.test(name) && !name.startsWith('NITRO_INFER_')) env[name] = value;
  }
  // onnxruntime-node's post-install (npm 10 runs it) would download CUDA libraries; the README
  // tells users to skip it exactly so.
  env.ONNXRUNTIME_NODE_INSTALL = 'skip';
  return env;
}

async function npm(cli: string, args: readonly string[], cwd: string): Promise<string> {
  const { stdout } = await run(process.execPath, [cli, ...args], {
    cwd,
    env: userEnvironment(),
    encoding: 'utf8',
    maxBuffer: 16 * 1024 * 1024,
  });
  return stdout;
}

/** Bytes of every file under `directory` (what the install put on disk). */
async function sizeOf(directory: string): Promise<number> {
  let total = 0;
  for (const entry of await readdir(directory, { recursive: true, withFileTypes: true })) {
    if (entry.isFile()) total += (await stat(path.join(entry.parentPath, entry.name))).size;
  }
  return total;
}

const CONSUMER_TS = `import { createClient, resolvePolicy, verifyReceipt, RECEIPT_HEADER } from '@nitro-infer/client';
import type { ClientOptions, ClientPolicy, InferenceResult, NitroInferClient, Receipt } from '@nitro-infer/client';

export const header: string = RECEIPT_HEADER;
export function connect(options: ClientOptions): NitroInferClient {
  return createClient(options);
}
export type Parts = [ClientPolicy, InferenceResult, Receipt, typeof resolvePolicy, typeof verifyReceipt];
// The declarations are real types, not any: a wrong call must not type-check.
// @ts-expect-error createClient takes its options object
createClient(42);
`;

const CONSUMER_TSCONFIG = {
  compilerOptions: {
    target: 'ES2022',
    module: 'NodeNext',
    moduleResolution: 'NodeNext',
    strict: true,
    noEmit: true,
    types: ['node'],
    // Our declarations are checked too, not only trusted.
    skipLibCheck: false,
  },
  files: ['consumer.ts'],
};

const CONSUMER_MJS = `import { createClient, resolvePolicy, verifyReceipt, RECEIPT_HEADER, DEFAULT_MAX_AGE_MS } from '@nitro-infer/client';
const exported = { createClient, resolvePolicy, verifyReceipt };
for (const [name, value] of Object.entries(exported)) if (typeof value !== 'function') throw new Error(name);
if (RECEIPT_HEADER !== 'nitro-infer-receipt' || !(DEFAULT_MAX_AGE_MS > 0)) throw new Error('constants');
console.log('client ok');
`;

let scratch = '';
let registry: OfflineRegistry;
const tarballs = { client: '', server: '' };
/** Per npm: the client-only project and the server project. */
const projects = new Map<
  string,
  {
    client: string;
    server: string;
    version: string;
    typeCheck: { stdout: string; failed: boolean };
  }
>();

/** tsc on a consumer of the installed client: what it printed, and whether it failed. */
async function typeCheckConsumer(project: string): Promise<{ stdout: string; failed: boolean }> {
  await writeFile(path.join(project, 'consumer.ts'), CONSUMER_TS);
  await writeFile(path.join(project, 'tsconfig.json'), JSON.stringify(CONSUMER_TSCONFIG));
  const tsc = path.join(PROJECT_ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
  return run(process.execPath, [tsc, '-p', project], { cwd: project, encoding: 'utf8' }).then(
    ({ stdout }) => ({ stdout, failed: false }),
    (error: { stdout: string }) => ({ stdout: error.stdout, failed: true }),
  );
}
const sizes: string[] = [];

beforeAll(async () => {
  scratch = await mkdtemp(path.join(os.tmpdir(), 'nitro-infer-packaging-'));
  // What `npm test` already ran; incremental, so normally a no-op here.
  await run(process.execPath, [path.join(PROJECT_ROOT, 'scripts', 'build.mjs')], { cwd: PROJECT_ROOT });
  const packed = path.join(scratch, 'packed');
  await mkdir(packed);
  for (const [which, args] of [
    ['server', []],
    ['client', ['--workspace', 'packages/client']],
  ] as const) {
    const out = await npm(NPM_11, ['pack', ...args, '--pack-destination', packed, '--json'], PROJECT_ROOT);
    const [info] = JSON.parse(out) as [{ filename: string }];
    tarballs[which] = path.join(packed, info.filename);
  }
  registry = await startOfflineRegistry(path.join(PROJECT_ROOT, 'package-lock.json'));
  const install = ['install', '--prefer-offline', '--registry', registry.url, '--no-audit', '--no-fund'];
  // The two npm versions side by side: each install is mostly waiting on the disk.
  await Promise.all(
    NPMS.map(async ([label, cli]) => {
      const version = (await npm(cli, ['--version'], scratch)).trim();
      const base = path.join(scratch, label.replace(' ', ''));
      const project = { client: path.join(base, 'client'), server: path.join(base, 'server'), version };
      for (const directory of [project.client, project.server]) {
        await mkdir(directory, { recursive: true });
        await writeFile(
          path.join(directory, 'package.json'),
          `${JSON.stringify({ name: 'consumer', version: '1.0.0', private: true, type: 'module' })}\n`,
        );
      }
      // @types/node: what a TypeScript user of a Node library installs anyway.
      await npm(cli, [...install, tarballs.client, '@types/node@20'], project.client);
      const [typeCheck] = await Promise.all([
        typeCheckConsumer(project.client),
        npm(cli, [...install, tarballs.server], project.server),
      ]);
      projects.set(label, { ...project, typeCheck });
      sizes.push(
        `${label} (${version}): @nitro-infer/client ${((await sizeOf(path.join(project.client, 'node_modules'))) / 2 ** 20).toFixed(1)} MiB ` +
          `(with @types/node), nitro-infer ${((await sizeOf(path.join(project.server, 'node_modules'))) / 2 ** 20).toFixed(1)} MiB`,
      );
    }),
  );
  console.info(`install sizes (node_modules, file bytes):\n  ${sizes.sort().join('\n  ')}`);
}, 600_000);

afterAll(async () => {
  await registry?.close();
  if (scratch !== '') await rm(scratch, { recursive: true, force: true });
});

describe('the packed packages, installed offline as a user would', () => {
  it('downloads nothing: every tarball came from the npm cache', () => {
    expect(registry.tarballRequests).toEqual([]);
  });

  it('runs npm 11 and npm 10', () => {
    expect(projects.get('npm 11')!.version).toMatch(/^11\./);
    expect(projects.get('npm 10')!.version).toMatch(/^10\./);
  });

  describe.each(NPMS.map(([label]) => [label]))('with %s', (label) => {
    it('the client package brings none of the server dependencies', async () => {
      const modules = path.join(projects.get(label)!.client, 'node_modules');
      for (const name of SERVER_ONLY) expect(existsSync(path.join(modules, name)), name).toBe(false);
      expect(existsSync(path.join(modules, '@nitro-infer', 'client', 'dist', 'client', 'index.d.ts'))).toBe(
        true,
      );
    });

    it('imports @nitro-infer/client from plain Node 20 ESM', async () => {
      const project = projects.get(label)!.client;
      await writeFile(path.join(project, 'consumer.mjs'), CONSUMER_MJS);
      const { stdout } = await run(process.execPath, ['consumer.mjs'], {
        cwd: project,
        env: userEnvironment(),
      });
      expect(stdout.trim()).toBe('client ok');
    });

    it('type-checks a consumer with moduleResolution NodeNext', () => {
      // Run in beforeAll, beside the server install (tsc is CPU, the install mostly disk).
      expect(projects.get(label)!.typeCheck).toEqual({ stdout: '', failed: false });
    });

    it('runs the installed nitro-infer CLI without tsx, and imports nitro-infer/cli', async () => {
      const project = projects.get(label)!.server;
      const modules = path.join(project, 'node_modules');
      expect(existsSync(path.join(modules, 'tsx'))).toBe(false);
      const help = await run(process.execPath, [path.join(modules, '.bin', 'nitro-infer'), '--help'], {
        cwd: project,
        env: userEnvironment(),
      });
      expect(help.stdout).toContain('Usage: nitro-infer <command>');
      const imported = await run(
        process.execPath,
        [
          '--input-type=module',
          '-e',
          "const { run } = await import('nitro-infer/cli'); console.log((await run(['--help'], async () => Buffer.alloc(0))).exitCode);",
        ],
        { cwd: project, env: userEnvironment() },
      );
      expect(imported.stdout.trim()).toBe('0');
    });

    it.skipIf(!HAVE_FIXTURES)('verifies a real attestation document with the installed CLI', async () => {
      const project = projects.get(label)!.server;
      const entry = manifest().find((candidate) => candidate.expect === 'valid')!;
      const args = ['attest', 'verify', fixturePath(entry.file), '--at', String(entry.timestamp_ms)];
      const result = await run(
        process.execPath,
        [
          path.join(project, 'node_modules', '.bin', 'nitro-infer'),
          ...args,
          ...(entry.debug_mode ? ['--allow-debug'] : []),
        ],
        { cwd: project, env: userEnvironment() },
      );
      expect(result.stdout).toContain('valid attestation document');
    });
  });
});
