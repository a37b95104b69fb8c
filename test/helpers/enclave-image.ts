/**
 * The enclave image's `/app` without Docker: what Dockerfile.enclave's build stage produces, made
 * here from this checkout for the image tests and the VM tests. The bundle comes from
 * `scripts/build-enclave.ts` (the same call the Dockerfile runs), the native packages are copied and
 * pruned as the Dockerfile prunes them (linux-x64 glibc binaries only), and `enclave.json` is the
 * Dockerfile's own `printf` evaluated with its `ARG` defaults, so a change to the measured
 * configuration there reaches these tests.
 */
import { statSync } from 'node:fs';
import { cp, mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { bundleEnclave } from '../../scripts/build-enclave.ts';
import { PROJECT_ROOT } from './fixtures.ts';

/** The packages the Dockerfile copies into `/app/node_modules` (the bundle's externals). */
export const IMAGE_NATIVE_PACKAGES = [
  'onnxruntime-node',
  'onnxruntime-common',
  'koffi',
  '@koromix/koffi-linux-x64',
] as const;

/** Paths (relative to a package) the Dockerfile deletes; `*` matches one path segment. */
const PRUNED = ['onnxruntime-node/script', 'koffi/vendor', 'koffi/doc', '@koromix/koffi-linux-x64/musl_x64'];

function prunedByDockerfile(relative: string, isFile: boolean): boolean {
  if (PRUNED.some((prefix) => relative === prefix || relative.startsWith(`${prefix}/`))) return true;
  // `find koffi/src/koffi/src -type f ! -name '*.js' ! -name '*.cjs' -delete`: its C++ sources.
  if (relative.startsWith('koffi/src/koffi/src/') && isFile && !/\.c?js$/.test(relative)) return true;
  // `find …/bin -mindepth 2 ! -name linux` and `-mindepth 3 ! -name x64`.
  const bin = /^onnxruntime-node\/bin\/[^/]+\/([^/]+)(?:\/([^/]+))?/.exec(relative);
  if (bin === null) return false;
  return bin[1] !== 'linux' || (bin[2] !== undefined && bin[2] !== 'x64');
}

/** `enclave.json` as the Dockerfile writes it: its printf format filled with its ARG defaults. */
export function imageConfig(dockerfile: string): string {
  const args = new Map<string, string>();
  for (const match of dockerfile.matchAll(/^ARG\s+([A-Z_]+)=(\S+)$/gm)) args.set(match[1]!, match[2]!);
  const printf = /printf '([^']+)' \\\n\s*((?:"\$[A-Z_]+"\s*)+)> \/out\/enclave\.json/.exec(dockerfile);
  if (printf === null) throw new Error('Dockerfile.enclave no longer writes enclave.json with printf');
  const values = [...printf[2]!.matchAll(/"\$([A-Z_]+)"/g)].map((match) => {
    const value = args.get(match[1]!);
    if (value === undefined) throw new Error(`ARG ${match[1]} has no default`);
    return value;
  });
  let index = 0;
  const text = printf[1]!.replace(/%s/g, () => values[index++] ?? '').replace(/\\n$/, '\n');
  JSON.parse(text);
  return text;
}

/**
 * Writes `/app` into `appDirectory`: `dist/enclave/*.mjs` (with `extraEntries` bundled like the
 * entry), `node_modules/` with the image's native packages, `enclave.json`.
 */
export async function stageImageApp(
  appDirectory: string,
  extraEntries: Record<string, string> = {},
): Promise<void> {
  await bundleEnclave(path.join(appDirectory, 'dist', 'enclave'), extraEntries);
  const modules = path.join(PROJECT_ROOT, 'node_modules');
  for (const name of IMAGE_NATIVE_PACKAGES) {
    await mkdir(path.dirname(path.join(appDirectory, 'node_modules', name)), { recursive: true });
    await cp(path.join(modules, name), path.join(appDirectory, 'node_modules', name), {
      recursive: true,
      filter: (source) =>
        !prunedByDockerfile(
          path.relative(modules, source).split(path.sep).join('/'),
          statSync(source).isFile(),
        ),
    });
  }
  const dockerfile = await readFile(path.join(PROJECT_ROOT, 'Dockerfile.enclave'), 'utf8');
  await writeFile(path.join(appDirectory, 'enclave.json'), imageConfig(dockerfile));
}
