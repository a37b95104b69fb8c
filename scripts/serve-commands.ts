/**
 * `nitro-infer enclave` and `nitro-infer parent`: start one side from a config file (JSON or YAML;
 * `NITRO_INFER_*` environment variables override it) and serve until SIGINT/SIGTERM. Each prints
 * one JSON line `{"ready": …}` once it serves, so launchers and tests can wait for it. A stop
drains first: requests in flight finish, new ones get 503 (docs/protocols.md "Stopping").
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { Static, TSchema } from 'typebox';
import { EnclaveConfigSchema, ParentConfigSchema, environmentVariables } from '../shared/config.ts';
import { CliError } from '../shared/errors.ts';
import { parseFlags } from './cli-input.ts';
import { loadConfigFile } from './config-file.ts';
import { exitWhenParentExits } from './parent-death.ts';

export const ENCLAVE_HELP = `Usage: nitro-infer enclave [--config <file.json|file.yaml>] [--exit-with-parent]

Starts the enclave service: NSM, keys, attested KMS, model manager, inference workers, and the
link listener (vsock:any:5000 by default). Inside a Nitro enclave this is the image's entry point.
--exit-with-parent stops it when the process that started it exits (launchers, the local stack).

Environment variables override the file:
  ${environmentVariables(EnclaveConfigSchema).join('\n  ')}`;

export const PARENT_HELP = `Usage: nitro-infer parent [--config <file.json|file.yaml>] [--exit-with-parent]

Starts the parent: the HTTP API (DESIGN.md 4.1) on http.host:http.port, the link to the enclave,
S3 artifact loading, credential pushes and, in simulation, the KMS forwarder.

Environment variables override the file:
  ${environmentVariables(ParentConfigSchema).join('\n  ')}`;

/**
 * The common start of both verbs: `--help`, or the config file resolved with the environment.
 * Resolves to undefined when only help was asked for.
 */
async function configOrHelp<S extends TSchema>(
  args: readonly string[],
  schema: S,
  help: string,
  print: (line: string) => void,
): Promise<Static<S> | undefined> {
  const { values } = parseFlags(args, {
    config: { type: 'string', short: 'c' },
    'exit-with-parent': { type: 'boolean' },
  });
  if (values.help === true) {
    print(help);
    return undefined;
  }
  // For launchers (the local stack): stop when the process that started us goes, however it goes.
  if (values['exit-with-parent'] === true) exitWhenParentExits();
  return loadConfigFile(schema, values.config);
}

/**
 * Serves until `stopped` (the first SIGTERM, SIGINT or SIGHUP), then drains — no new requests,
 * those in flight finish within the drain timeout — and closes; exit status 0. A second signal
 * while draining exits at once (cli.ts).
 */
async function serve(
  runtime: { drain(): Promise<void>; close(): Promise<void> },
  ready: object,
  print: (line: string) => void,
  stopped: Promise<void>,
) {
  print(JSON.stringify({ ...ready, pid: process.pid }));
  await stopped;
  await runtime.drain();
  await runtime.close();
  return 0;
}

/** Serves the enclave until `stopped`. */
export async function enclaveCommand(
  args: readonly string[],
  print: (line: string) => void,
  stopped: Promise<void>,
): Promise<number> {
  const config = await configOrHelp(args, EnclaveConfigSchema, ENCLAVE_HELP, print);
  if (config === undefined) return 0;
  let simulated;
  if (config.nsm === 'simulated') {
    if (config.simulation === undefined)
      throw new CliError('ERR_CLI_USAGE', 'nsm "simulated" needs simulation.pkiFile');
    // Simulation only: the simulated NSM and PKI live in sim/, which production never loads.
    const sim = await import('../sim/index.ts');
    const pki = sim.SimulatedNitroPki.fromJSON(JSON.parse(await readFile(config.simulation.pkiFile, 'utf8')));
    const identity = await sim.createSimulatedEnclaveIdentity({
      pki,
      ...(config.simulation.projectRoot === undefined
        ? {}
        : { projectRoot: path.resolve(config.simulation.projectRoot) }),
    });
    simulated = { nsm: identity.nsm, attestationRoots: [pki.rootCertificate] };
  }
  // Each side's code loads only when that side runs (the CLI's other verbs stay fast).
  const { startEnclave } = await import('../enclave/main.ts');
  const runtime = await startEnclave(config, simulated === undefined ? {} : { simulated });
  return serve(runtime, { ready: 'enclave', address: runtime.address }, print, stopped);
}

/** Serves the parent until `stopped`. */
export async function parentCommand(
  args: readonly string[],
  print: (line: string) => void,
  stopped: Promise<void>,
): Promise<number> {
  const config = await configOrHelp(args, ParentConfigSchema, PARENT_HELP, print);
  if (config === undefined) return 0;
  const { startParent } = await import('../parent/main.ts');
  const runtime = await startParent(config);
  return serve(runtime, { ready: 'parent', url: runtime.url }, print, stopped);
}
