/**
 * Compiles the enclave to plain JavaScript for the image (Dockerfile.enclave): `enclave/entry.ts`
 * and the inference worker, bundled with esbuild, with the native packages (onnxruntime-node,
 * koffi) left external. The output is deterministic for a given lockfile and source tree: no
 * timestamps, no absolute paths, sorted inputs — two builds give the same bytes, hence the same PCRs.
 *
 * Usage: tsx scripts/build-enclave.ts [outdir]   (default dist/enclave)
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
/** Native or optional packages that stay in node_modules. */
export const EXTERNAL_PACKAGES = ['onnxruntime-node', 'koffi', 'cbor-extract'];

const common = {
  absWorkingDir: ROOT,
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  external: EXTERNAL_PACKAGES,
  legalComments: 'none',
  sourcemap: false,
  logLevel: 'warning',
  // Some bundled CommonJS dependencies call require(); give the ESM bundle one.
  banner: {
    js: "import { createRequire as __nitroCreateRequire } from 'node:module'; const require = __nitroCreateRequire(import.meta.url);",
  },
} as const;

/**
 * Bundles the enclave entry and the inference worker into `outdir`; `extraEntries` (tests) are
 * bundled the same way as the entry, worker location included.
 */
export async function bundleEnclave(
  outdir: string,
  extraEntries: Record<string, string> = {},
): Promise<void> {
  await build({
    ...common,
    entryPoints: { main: 'enclave/entry.ts', ...extraEntries },
    outdir,
    outExtension: { '.js': '.mjs' },
    define: { NITRO_INFER_BUNDLED_WORKER: JSON.stringify('./inference-worker.mjs') },
  });
  await build({
    ...common,
    entryPoints: { 'inference-worker': 'enclave/inference/worker.ts' },
    outdir,
    outExtension: { '.js': '.mjs' },
  });
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  const outdir = path.resolve(process.argv[2] ?? path.join(ROOT, 'dist', 'enclave'));
  await bundleEnclave(outdir);
  console.log(`enclave bundle written to ${path.relative(process.cwd(), outdir) || '.'}`);
}
