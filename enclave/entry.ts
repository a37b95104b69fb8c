/**
 * The enclave image's entry point (Dockerfile.enclave): reads the JSON configuration baked into
 * the image (and so measured in PCR2), applies `NITRO_INFER_*` overrides, starts the service with
 * the real NSM and vsock, and stops cleanly on SIGTERM. The simulation uses `nitro-infer enclave`.
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { EnclaveConfigSchema, resolveConfig } from '../shared/config.ts';
import { isNitroInferError } from '../shared/errors.ts';
import { startEnclave } from './main.ts';

try {
  const { values } = parseArgs({ options: { config: { type: 'string' } }, strict: true });
  const file = values.config ?? '/app/enclave.json';
  const config = resolveConfig(
    EnclaveConfigSchema,
    JSON.parse(readFileSync(file, 'utf8')),
    process.env,
    file,
  );
  const runtime = await startEnclave(config);
  // SIGTERM drains: requests in flight finish (bounded by link.drainTimeoutMs), new ones are refused.
  const stop = () =>
    void runtime
      .drain()
      .then(() => runtime.close())
      .then(() => process.exit(0));
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
} catch (error) {
  const code = isNitroInferError(error) ? error.code : 'ERR_INTERNAL';
  process.stderr.write(
    `${JSON.stringify({ level: 50, time: Date.now(), pid: process.pid, event: 'enclave.start_failed', code, reason: (error as Error).message.slice(0, 500), msg: 'enclave.start_failed' })}\n`,
  );
  process.exit(1);
}
