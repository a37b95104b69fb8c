#!/usr/bin/env node
// Runs the compiled command line (dist/, written by scripts/build.mjs, which `npm start` and
// `npm test` run first). In a development checkout whose dist/ is missing or older than the
// sources, or with NITRO_INFER_FROM_SOURCE=1 (the tests, whose children must run the code under
// test), it runs the TypeScript sources through tsx instead: an edit is never shadowed by a stale
// build, and nothing races to rebuild dist/ under a running process. An installed package has
// no sources, hence no check and no tsx.
import { existsSync } from 'node:fs';
import { URL } from 'node:url';

// ONNX Runtime's telemetry off for every verb, before anything loads it (the simulation's
// self-check runs onnxruntime-node in this process); see enclave/inference/onnxruntime-env.ts.
process.env.ORT_DISABLE_TELEMETRY = '1';

async function runSources() {
  if (process.env.NITRO_INFER_FROM_SOURCE === '1') return true;
  const build = new URL('../scripts/build.mjs', import.meta.url);
  if (!existsSync(build)) return false;
  const { serverUpToDate } = await import(build.href);
  return !(await serverUpToDate());
}

if (await runSources()) {
  // tsx is a development dependency: a checkout installed with --omit=dev must be built first.
  const tsx = await import('tsx/esm/api').catch(() => undefined);
  if (tsx === undefined) {
    process.stderr.write(
      'error: ERR_CLI_USAGE: dist/ is missing or older than the sources, and tsx is not installed: run `npm run build`\n',
    );
    process.exit(2);
  }
  tsx.register();
  await import('../scripts/main.ts');
} else {
  await import('../dist/scripts/main.js');
}
