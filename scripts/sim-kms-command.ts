/**
 * `nitro-infer sim kms`: the KMS simulator on its own, for any AWS SDK client (endpoint override +
 * the printed CA). Prints one JSON line `{ endpoint, caCertPath, region, accessKeyId,
 * secretAccessKey }` and serves until interrupted.
 */
import path from 'node:path';
import { parseArgs } from 'node:util';
import { rootsFromFiles } from './attest-verify.ts';
import { CliError } from '../shared/errors.ts';
import { SimulatedNitroPki } from '../sim/index.ts';
import { KmsSimulator } from '../sim/kms/kms-simulator.ts';

export const SIM_KMS_HELP = `Usage: nitro-infer sim kms --listen <host:port> --state <dir> [options]

Starts the KMS simulator: AWS JSON 1.1 over HTTPS with SigV4, key policies with
kms:RecipientAttestation conditions, Recipient requests verified against the simulated Nitro root.
Prints one JSON line { endpoint, caCertPath, region, accessKeyId, secretAccessKey } and serves
until interrupted.

Options:
  --listen <host:port>       address to listen on (port 0 picks a free one; default 127.0.0.1:0)
  --state <dir>              keys, credentials and the TLS CA persist here (required)
  --region <region>          default us-east-1
  --attestation-root <file>  trust this Nitro root (PEM or DER) for Recipient documents (repeatable);
                             by default the simulated root in <dir>/pki.json (created if absent)
  -h, --help                 show this help`;

/** Starts the simulator; resolves when it has stopped. */
export async function simKms(
  args: readonly string[],
  print: (line: string) => void,
  stopped: Promise<void>,
): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: [...args],
      strict: true,
      options: {
        listen: { type: 'string' },
        state: { type: 'string' },
        region: { type: 'string' },
        'attestation-root': { type: 'string', multiple: true },
        help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (error) {
    throw new CliError('ERR_CLI_USAGE', (error as Error).message);
  }
  if (values.help === true) {
    print(SIM_KMS_HELP);
    return 0;
  }
  if (values.state === undefined) throw new CliError('ERR_CLI_USAGE', '--state <dir> is required');
  const match = /^([^:]+):(\d{1,5})$/.exec(values.listen ?? '127.0.0.1:0');
  if (match === null) throw new CliError('ERR_CLI_USAGE', '--listen takes <host>:<port>');
  const stateDirectory = path.resolve(values.state);

  // PEM (one or a bundle) or DER, as every other --root flag takes them.
  const roots = await rootsFromFiles(values['attestation-root'] ?? []);
  if (roots.length === 0)
    roots.push((await SimulatedNitroPki.openOrCreate(path.join(stateDirectory, 'pki.json'))).rootCertificate);

  const simulator = await KmsSimulator.start({
    stateDirectory,
    host: match[1] as string,
    port: Number(match[2]),
    ...(values.region === undefined ? {} : { region: values.region }),
    attestationRoots: roots,
  });
  print(JSON.stringify(simulator.info));
  await stopped;
  await simulator.close();
  return 0;
}
