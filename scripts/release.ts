/**
 * `npm run release`: the parent's release artifact, build/release/nitro-infer.tgz, in exactly the
 * layout the instance user data unpacks into /opt/nitro-infer (infra/stack.ts bootCommands): the
 * compiled server (dist/, written by `node scripts/build.mjs --server`, which `npm run release` runs
 * first), bin/ and scripts/deploy/ at the archive's root — no TypeScript sources, so bin/ runs dist/
 * and never looks for tsx, a development dependency — and node_modules with the production
 * dependencies only — those package-lock.json does not mark
 * `dev` — taken from this checkout's `npm ci`, so nothing is downloaded. onnxruntime-node keeps only
 * its linux-x64 binaries (no GPU libraries are ever downloaded: .npmrc skips install scripts).
 *
 * Built on linux-x64, the instances' platform: the optional native packages npm installed here
 * (esbuild's, cbor-extract's) are the host's. Deterministic: sorted entries, owner 0, the last
 * commit's time, gzip without a name or time, so two builds of one commit are byte-identical.
 */
import { spawn, execFileSync } from 'node:child_process';
import { createWriteStream, existsSync, readFileSync, readdirSync } from 'node:fs';
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import { createGzip } from 'node:zlib';
import { createHash } from 'node:crypto';

/** The runtime part of the checkout (git-tracked files under these paths), beside dist/. */
export const RELEASE_SOURCES = [
  'bin',
  'scripts/deploy',
  'package.json',
  'package-lock.json',
  'tsconfig.json',
  '.npmrc',
  'README.md',
] as const;

/** Paths inside node_modules left out: other platforms' onnxruntime binaries, build scripts. */
const PRUNED = [
  /^node_modules\/onnxruntime-node\/bin\/napi-v\d+\/(?!linux\/)/,
  /^node_modules\/onnxruntime-node\/bin\/napi-v\d+\/linux\/(?!x64\/)/,
  /^node_modules\/onnxruntime-node\/script\//,
];

interface LockPackage {
  readonly dev?: boolean;
  readonly optional?: boolean;
  readonly link?: boolean;
}

export interface ReleaseOptions {
  /** The checkout (default: this repository). */
  readonly root: string;
  /** The archive to write (default <root>/build/release/nitro-infer.tgz). */
  readonly output?: string;
  /** gzip level, 1 (fast) to 9 (default 6). */
  readonly level?: number;
}

export interface Release {
  readonly file: string;
  readonly sha256: string;
  readonly entries: number;
}

/** Every file and symlink below `directory`, not descending into a nested node_modules. */
function walk(root: string, relative: string, out: string[]): void {
  for (const entry of readdirSync(path.join(root, relative), { withFileTypes: true })) {
    const child = `${relative}/${entry.name}`;
    if (entry.isDirectory()) {
      if (entry.name !== 'node_modules') walk(root, child, out);
    } else if (entry.isFile() || entry.isSymbolicLink()) {
      out.push(child);
    }
  }
}

/** The production packages of the lockfile, each as its node_modules path; throws if one is missing. */
export function productionPackages(root: string): string[] {
  const lock = JSON.parse(readFileSync(path.join(root, 'package-lock.json'), 'utf8')) as {
    packages?: Record<string, LockPackage>;
  };
  const packages: string[] = [];
  const missing: string[] = [];
  for (const [key, meta] of Object.entries(lock.packages ?? {})) {
    // Links are workspace packages (the client's), which the compiled server does not import.
    if (!key.startsWith('node_modules/') || meta.dev === true || meta.link === true) continue;
    if (existsSync(path.join(root, key))) packages.push(key);
    // Optional packages for other platforms (another esbuild binary) are absent by design.
    else if (meta.optional !== true) missing.push(key);
  }
  if (missing.length > 0) {
    throw new Error(`node_modules lacks ${missing.slice(0, 3).join(', ')}…: run npm ci first`);
  }
  return packages;
}

/** The archive's file list, sorted: tracked files and new ones git does not ignore (never .nitro-infer/ state). */
export function releaseFiles(root: string): string[] {
  const tracked = execFileSync(
    'git',
    ['ls-files', '-z', '--cached', '--others', '--exclude-standard', '--', ...RELEASE_SOURCES],
    { cwd: root },
  )
    .toString('utf8')
    .split('\0')
    .filter((file) => file.length > 0 && existsSync(path.join(root, file)));
  if (!existsSync(path.join(root, 'dist', 'scripts', 'main.js'))) {
    throw new Error('dist/ is missing: run `node scripts/build.mjs --server` first (npm run release does)');
  }
  const compiled: string[] = [];
  walk(root, 'dist', compiled);
  const modules: string[] = [];
  for (const key of productionPackages(root)) walk(root, key, modules);
  const files = [
    ...tracked,
    ...compiled,
    ...modules.filter((file) => !PRUNED.some((pattern) => pattern.test(file))),
  ];
  if (!files.some((file) => file.startsWith('node_modules/onnxruntime-node/bin/napi-v6/linux/x64/'))) {
    throw new Error('onnxruntime-node has no linux-x64 binary in node_modules');
  }
  return [...new Set(files)].sort();
}

export async function buildRelease(options: ReleaseOptions): Promise<Release> {
  if (process.platform !== 'linux' || process.arch !== 'x64') {
    throw new Error(
      `build the release on linux-x64 (the instances' platform), not ${process.platform}-${process.arch}`,
    );
  }
  const level = options.level ?? 6;
  if (!Number.isInteger(level) || level < 1 || level > 9) throw new Error('--level takes 1 to 9');
  const root = options.root;
  const output = options.output ?? path.join(root, 'build', 'release', 'nitro-infer.tgz');
  const files = releaseFiles(root);
  const epoch = execFileSync('git', ['log', '-1', '--format=%ct'], { cwd: root }).toString().trim();
  await mkdir(path.dirname(output), { recursive: true });
  const list = `${output}.files`;
  await writeFile(list, files.map((file) => `${file}\0`).join(''));
  const partial = `${output}.partial`;
  const tar = spawn(
    'tar',
    [
      '--create',
      '--no-recursion',
      '--null',
      `--files-from=${list}`,
      '--owner=0',
      '--group=0',
      '--numeric-owner',
      `--mtime=@${epoch}`,
      '--mode=u+rw,go-w,a+rX',
      '--format=gnu',
      '--file=-',
    ],
    { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const exited = new Promise<number | null>((resolve) => tar.on('close', resolve));
  await pipeline(tar.stdout, createGzip({ level }), createWriteStream(partial));
  const status = await exited;
  if (status !== 0) throw new Error(`tar exited with status ${status}`);
  await rename(partial, output);
  await rm(list);
  const sha256 = createHash('sha256').update(readFileSync(output)).digest('hex');
  return { file: output, sha256, entries: files.length };
}

async function main(argv: readonly string[]): Promise<void> {
  const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
  let output: string | undefined;
  let level: number | undefined;
  for (let i = 0; i < argv.length; i += 1) {
    const flag = argv[i];
    const value = argv[i + 1];
    if (flag === '--output' && value !== undefined) output = path.resolve(value);
    else if (flag === '--level' && value !== undefined && /^\d$/.test(value)) level = Number(value);
    else if (flag === '-h' || flag === '--help') {
      process.stdout.write('Usage: npm run release [-- --output <file.tgz>] [--level 1-9]\n');
      return;
    } else throw new Error(`unknown or incomplete option ${flag ?? ''}`);
    i += 1;
  }
  const release = await buildRelease({
    root,
    ...(output === undefined ? {} : { output }),
    ...(level === undefined ? {} : { level }),
  });
  process.stdout.write(
    `${release.file}: ${release.entries} files, sha256 ${release.sha256}\n` +
      'upload it and the EIF before (or soon after) the instances boot; they wait for both:\n' +
      `  aws s3 cp ${path.relative(process.cwd(), release.file)} s3://<ArtifactsBucket>/release/nitro-infer.tgz\n` +
      '  aws s3 cp build/enclave.eif s3://<ArtifactsBucket>/release/enclave.eif\n',
  );
}

if (process.argv[1] !== undefined && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main(process.argv.slice(2)).catch((error: unknown) => {
    process.stderr.write(`error: ${(error as Error).message}\n`);
    process.exitCode = 2;
  });
}
