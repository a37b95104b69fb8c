#!/usr/bin/env node
/**
 * Compiles the repository to plain JavaScript, so nothing at run time needs tsx:
 *
 * - `dist/` — the server/CLI package: every source file of the runtime folders, one output file per
 *   input (same folder layout, so `import.meta.url` arithmetic in the sources still holds), with
 *   `dist/bin/nitro-infer.js` as the entry the simulated stack spawns for its enclave child.
 * - `packages/client/dist/` — the client package: only `client/` and the `shared/` modules it
 *   imports, plus their declarations (tsc), so the SDK installs without the server's dependencies.
 *
 * Written in plain JavaScript because it has to run before anything is compiled (`npm start`,
 * `npm test`; .npmrc's ignore-scripts means no pre/post hook would). Incremental: a target whose
 * inputs are no newer than its stamp is skipped, which is the usual case and costs a few ms of
 * `stat`. esbuild transpiles (no type check: `npm run check` does that); tsc only writes the
 * client's declarations.
 *
 * Usage: node scripts/build.mjs [--server] [--client] [--force]   (default: both)
 */
import { spawnSync } from 'node:child_process';
import { copyFile, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { existsSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { URL, fileURLToPath, pathToFileURL } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
/** The folders whose sources the server/CLI package runs (DESIGN.md 3); tests and benches stay out. */
export const SERVER_FOLDERS = [
  'shared',
  'transport',
  'enclave',
  'parent',
  'client',
  'proxy',
  'scripts',
  'sim',
];
/** Build tools among those sources, which the Dockerfile runs from the repository, not the package. */
const BUILD_ONLY = new Set(['scripts/build-enclave.ts']);
const SERVER_OUT = path.join(ROOT, 'dist');
const CLIENT_PACKAGE = path.join(ROOT, 'packages', 'client');
const CLIENT_OUT = path.join(CLIENT_PACKAGE, 'dist');
const STAMP = '.build-stamp.json';

/** The TypeScript sources under `folders` (relative to the root), sorted. */
function sources(folders) {
  const files = [];
  for (const folder of folders) {
    for (const entry of readdirSync(path.join(ROOT, folder), { recursive: true, withFileTypes: true })) {
      if (!entry.isFile() || !entry.name.endsWith('.ts') || entry.name.endsWith('.d.ts')) continue;
      files.push(path.relative(ROOT, path.join(entry.parentPath, entry.name)).split(path.sep).join('/'));
    }
  }
  return files.sort();
}

function serverSources() {
  return sources(SERVER_FOLDERS).filter((file) => !BUILD_ONLY.has(file));
}

/** Newest modification time among `files` (relative to the root). */
function newest(files) {
  let latest = 0;
  for (const file of files) latest = Math.max(latest, statSync(path.join(ROOT, file)).mtimeMs);
  return latest;
}

/**
 * Whether `outdir` was built from exactly `inputs` and none changed since: the stamp holds the
 * input list, so a deleted or added file also rebuilds. `inputs` includes this script and the
 * manifests, whose changes can change the output too.
 */
async function upToDate(outdir, inputs) {
  try {
    const stamp = JSON.parse(await readFile(path.join(outdir, STAMP), 'utf8'));
    return stamp.inputs.join('\n') === inputs.join('\n') && stamp.newest === newest(inputs);
  } catch {
    return false;
  }
}

async function writeStamp(outdir, inputs) {
  await writeFile(path.join(outdir, STAMP), `${JSON.stringify({ inputs, newest: newest(inputs) })}\n`);
}

/**
 * esbuild in "one output per input" mode: bundling is on only so that this plugin sees every
 * import; it marks each one external, rewriting a relative `.ts` specifier to the `.js` esbuild
 * writes beside it (packages stay as they are, resolved by Node at run time).
 */
const keepImports = {
  name: 'keep-imports',
  setup(build) {
    build.onResolve({ filter: /.*/ }, (args) => {
      if (args.kind === 'entry-point') return undefined;
      if (args.path.startsWith('.')) return { path: args.path.replace(/\.ts$/, '.js'), external: true };
      return { path: args.path, external: true };
    });
  },
};

function esbuildOptions(entryPoints, outdir) {
  return {
    absWorkingDir: ROOT,
    entryPoints,
    outdir,
    outbase: ROOT,
    bundle: true,
    plugins: [keepImports],
    platform: 'node',
    format: 'esm',
    target: 'node20',
    sourcemap: 'linked',
    legalComments: 'none',
    logLevel: 'warning',
    // The inference pool loads its worker beside itself (enclave/inference/worker-supervisor.ts);
    // from sources that is worker-entry.js, which registers tsx first. Compiled, it is the worker.
    define: { NITRO_INFER_BUNDLED_WORKER: JSON.stringify('./worker.js') },
  };
}

/** The server/CLI package: all runtime sources → dist/, plus the enclave child's entry. */
export async function buildServer({ force = false } = {}) {
  const files = serverSources();
  const inputs = [...files, 'scripts/build.mjs', 'package.json', 'package-lock.json'];
  if (!force && (await upToDate(SERVER_OUT, inputs))) return false;
  const { build } = await import('esbuild');
  // Start clean: an output whose source was deleted must not linger and be imported.
  await rm(SERVER_OUT, { recursive: true, force: true });
  await build(esbuildOptions(files, SERVER_OUT));
  // What the simulated stack spawns for the enclave (sim/enclave-process.ts: PROJECT_ROOT/bin)
  // and what the simulation measures as the enclave's code (sim/code-measurement.ts: the lockfile
  // beside the compiled enclave/, shared/, transport/): both relative to dist/, the compiled root.
  await mkdir(path.join(SERVER_OUT, 'bin'), { recursive: true });
  await writeFile(
    path.join(SERVER_OUT, 'bin', 'nitro-infer.js'),
    [
      '#!/usr/bin/env node',
      '// Generated by scripts/build.mjs: the compiled command line (see bin/nitro-infer.js).',
      "process.env.ORT_DISABLE_TELEMETRY = '1';",
      "await import('../scripts/main.js');",
      '',
    ].join('\n'),
  );
  await copyFile(path.join(ROOT, 'package-lock.json'), path.join(SERVER_OUT, 'package-lock.json'));
  await writeStamp(SERVER_OUT, inputs);
  return true;
}

/**
 * The client package: the import graph of client/index.ts (asked of esbuild), compiled file by
 * file into packages/client/dist/, then tsc's declarations for the same files. Fails when the
 * graph reaches a package the client's manifest does not list, so a server dependency cannot
 * creep into what users install.
 */
export async function buildClient({ force = false } = {}) {
  const manifest = JSON.parse(await readFile(path.join(CLIENT_PACKAGE, 'package.json'), 'utf8'));
  const candidates = sources(['client', 'shared']);
  const inputs = [
    ...candidates,
    'scripts/build.mjs',
    'packages/client/package.json',
    'packages/client/tsconfig.json',
  ];
  if (!force && (await upToDate(CLIENT_OUT, inputs))) return false;
  const { build } = await import('esbuild');
  const graph = await build({
    absWorkingDir: ROOT,
    entryPoints: ['client/index.ts'],
    bundle: true,
    packages: 'external',
    platform: 'node',
    format: 'esm',
    write: false,
    metafile: true,
    logLevel: 'warning',
  });
  const files = Object.keys(graph.metafile.inputs).sort();
  const packages = new Set();
  for (const input of Object.values(graph.metafile.inputs)) {
    for (const imported of input.imports) {
      if (!imported.external || imported.path.startsWith('node:')) continue;
      const parts = imported.path.split('/');
      packages.add(imported.path.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0]);
    }
  }
  const declared = new Set(Object.keys(manifest.dependencies ?? {}));
  const undeclared = [...packages].filter((name) => !declared.has(name));
  if (undeclared.length > 0 || files.some((file) => !/^(client|shared)\//.test(file))) {
    throw new Error(
      `the client's import graph reaches ${undeclared.join(', ') || 'a file outside client/ and shared/'}: ` +
        'declare it in packages/client/package.json or keep it out of the client',
    );
  }
  await rm(CLIENT_OUT, { recursive: true, force: true });
  await build(esbuildOptions(files, CLIENT_OUT));
  const tsc = spawnSync(
    process.execPath,
    [
      path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'),
      '-p',
      path.join(CLIENT_PACKAGE, 'tsconfig.json'),
    ],
    { cwd: ROOT, stdio: 'inherit' },
  );
  if (tsc.status !== 0) throw new Error(`tsc (client declarations) failed with status ${tsc.status}`);
  await rewriteDeclarationImports(CLIENT_OUT);
  await writeStamp(CLIENT_OUT, inputs);
  return true;
}

/**
 * tsc keeps the sources' `./x.ts` specifiers in declarations (rewriteRelativeImportExtensions
 * covers only JavaScript); a consumer's NodeNext resolution wants the `.js` that exists.
 */
async function rewriteDeclarationImports(outdir) {
  for (const entry of readdirSync(outdir, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile() || !entry.name.endsWith('.d.ts')) continue;
    const file = path.join(entry.parentPath, entry.name);
    const text = await readFile(file, 'utf8');
    const rewritten = text.replace(
      /(\bfrom\s*|\bimport\s*\(\s*)(['"])(\.{1,2}\/[^'"]*)\.ts\2/g,
      (_match, lead, quote, specifier) => `${lead}${quote}${specifier}.js${quote}`,
    );
    if (rewritten !== text) await writeFile(file, rewritten);
  }
}

/** True when `dist/` exists and was built from the current sources (bin/nitro-infer.js asks). */
export async function serverUpToDate() {
  if (!existsSync(path.join(SERVER_OUT, STAMP))) return false;
  const files = serverSources();
  return upToDate(SERVER_OUT, [...files, 'scripts/build.mjs', 'package.json', 'package-lock.json']);
}

if (process.argv[1] !== undefined && pathToFileURL(path.resolve(process.argv[1])).href === import.meta.url) {
  const args = process.argv.slice(2);
  const force = args.includes('--force');
  const only = args.filter((arg) => arg === '--server' || arg === '--client');
  const started = performance.now();
  const built = [];
  if (only.length === 0 || only.includes('--server')) {
    if (await buildServer({ force })) built.push('dist/');
  }
  if (only.length === 0 || only.includes('--client')) {
    if (await buildClient({ force })) built.push('packages/client/dist/');
  }
  if (built.length > 0) {
    console.error(`built ${built.join(' and ')} in ${Math.round(performance.now() - started)} ms`);
  }
}
