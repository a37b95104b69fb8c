/** Flags every verb that talks to an enclave shares: the endpoint and the verification policy. */
import { CliError } from '../shared/errors.ts';
import { createClient } from '../client/index.ts';
import type { ClientPolicy, NitroInferClient } from '../client/index.ts';
import { expectedPcrsFromFlags, rootsFromFiles } from './attest-verify.ts';
import { parseDuration } from './cli-input.ts';

export const CLIENT_FLAGS = {
  endpoint: { type: 'string' },
  pcrs: { type: 'string' },
  'expect-pcr': { type: 'string', multiple: true },
  root: { type: 'string', multiple: true },
  'max-age': { type: 'string' },
  'allow-debug': { type: 'boolean' },
  timeout: { type: 'string' },
} as const;

export const CLIENT_FLAGS_HELP = `  --endpoint <url>          the parent's base URL (or NITRO_INFER_ENDPOINT)
  --pcrs <file>             expected PCRs: a nitro-cli pcrs.json / build-enclave output
  --expect-pcr <i>=<hex>    expected PCR i (repeatable; PCR0 is required, from either flag)
  --root <file>             trust this Nitro root instead of AWS's: PEM or DER (the simulated
                            root for \`npm start\`)
  --max-age <duration>      oldest acceptable attestation (default 5m)
  --allow-debug             accept debug-mode enclaves (never in production)
  --timeout <duration>      give up on each call to the endpoint after this long (default: none)`;

export interface ClientFlagValues {
  endpoint?: string;
  pcrs?: string;
  'expect-pcr'?: string[];
  root?: string[];
  'max-age'?: string;
  'allow-debug'?: boolean;
  timeout?: string;
}

/** Builds an SDK client from the flags; refuses to run without pinned PCRs. */
export async function clientFromFlags(
  values: ClientFlagValues,
  transport: { readonly fetch?: typeof fetch } = {},
): Promise<NitroInferClient> {
  const endpoint = values.endpoint ?? process.env.NITRO_INFER_ENDPOINT;
  if (endpoint === undefined || !/^https?:\/\//.test(endpoint)) {
    throw new CliError('ERR_CLI_USAGE', '--endpoint <http(s)://host:port> is required');
  }
  const pcrs = await expectedPcrsFromFlags(values);
  // The SDK refuses a policy without PCR0 too; saying so here names the flags to fix.
  if (!pcrs.has(0))
    throw new CliError('ERR_CLI_USAGE', 'pin the enclave image: --pcrs <pcrs.json> or --expect-pcr 0=<hex>');
  const roots = await rootsFromFiles(values.root ?? []);
  const policy: ClientPolicy = {
    pcrs,
    ...(roots.length === 0 ? {} : { roots }),
    ...(values['max-age'] === undefined ? {} : { maxAgeMs: parseDuration(values['max-age']) }),
    allowDebug: values['allow-debug'] === true,
  };
  return createClient({
    endpoint,
    policy,
    ...(values.timeout === undefined ? {} : { timeoutMs: parseDuration(values.timeout) }),
    ...(transport.fetch === undefined ? {} : { fetch: transport.fetch }),
  });
}
