/**
 * `nitro-infer proxy`: the local attesting proxy (proxy/proxy-server.ts) as a verb. It listens on
 * loopback only unless `--listen-any` says otherwise: anyone who can reach the port can use the
 * attested channel, and plain HTTP on a network would expose the plaintext the proxy exists to protect.
 */
import { isIP } from 'node:net';
import { CliError } from '../shared/errors.ts';
import { fetchWithCa } from '../proxy/ca-fetch.ts';
import { startProxy } from '../proxy/proxy-server.ts';
import { ReceiptLog } from '../proxy/receipt-log.ts';
import { parseFlags } from './cli-input.ts';
import { readText } from './attest-verify.ts';
import { CLIENT_FLAGS, CLIENT_FLAGS_HELP, clientFromFlags } from './client-flags.ts';

export const PROXY_HELP = `Usage: nitro-infer proxy --endpoint <url> (--pcrs <file> | --expect-pcr <i>=<hex>) [options]

Serves plain Open Inference Protocol v2 (KServe / Triton HTTP) on this machine and sends every
call end to end encrypted through Oblivious HTTP to the attested enclave behind <url>. Nothing is
forwarded before the enclave's attestation passes the policy; it is re-attested as the policy
requires. Every receipt is verified before its response is passed on.
GET /v2/health/ready answers 200 when the enclave is attested, 503 with the reason when not.

Options:
  --listen <host:port>      where to listen (default 127.0.0.1:8000; loopback only)
  --listen-any              allow a non-loopback --listen address (plain HTTP on a network!)
  --receipts <file>         append every attestation and verified receipt as JSON lines
  --ca-bundle <pem file>    trust these CAs for TLS to the parent (instead of the system's)
${CLIENT_FLAGS_HELP}
  -h, --help                show this help

Stops on SIGINT/SIGTERM. Check a receipt log later with \`nitro-infer receipts verify <file>\`.`;

const LOOPBACK = new Set(['127.0.0.1', '::1', 'localhost']);

/** Parses `host:port` or `[v6]:port`. */
export function parseListen(value: string): { host: string; port: number } {
  const match = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(value);
  const host = match?.[1] ?? match?.[2];
  const port = Number(match?.[3]);
  if (
    host === undefined ||
    !Number.isInteger(port) ||
    port > 65535 ||
    (isIP(host) === 0 && host !== 'localhost')
  )
    throw new CliError(
      'ERR_CLI_USAGE',
      `--listen takes <ip>:<port> (or localhost:<port>), got ${JSON.stringify(value)}`,
    );
  return { host, port };
}

export function isLoopback(host: string): boolean {
  return LOOPBACK.has(host) || /^127\.\d+\.\d+\.\d+$/.test(host);
}

export async function proxyCommand(
  args: readonly string[],
  print: (line: string) => void,
  stopped: Promise<void>,
): Promise<number> {
  const { values } = parseFlags(args, {
    ...CLIENT_FLAGS,
    listen: { type: 'string' },
    'listen-any': { type: 'boolean' },
    receipts: { type: 'string' },
    'ca-bundle': { type: 'string' },
  });
  if (values.help === true) {
    print(PROXY_HELP);
    return 0;
  }
  const listen = parseListen(values.listen ?? '127.0.0.1:8000');
  if (!isLoopback(listen.host) && values['listen-any'] !== true) {
    throw new CliError(
      'ERR_CLI_USAGE',
      `${listen.host} is not a loopback address; the proxy serves plaintext, pass --listen-any to listen there anyway`,
    );
  }
  const ca = values['ca-bundle'] === undefined ? undefined : await readText(values['ca-bundle']);
  if (ca !== undefined && !ca.includes('-----BEGIN CERTIFICATE-----'))
    throw new CliError('ERR_CLI_INPUT', `${values['ca-bundle']} holds no PEM certificate`);
  const client = await clientFromFlags(values, ca === undefined ? {} : { fetch: fetchWithCa(ca) });
  const proxy = await startProxy({
    client,
    ...listen,
    anyHost: values['listen-any'] === true,
    ...(values.receipts === undefined ? {} : { receipts: new ReceiptLog(values.receipts) }),
    log: (line) => print(`proxy: ${line}`),
  });
  const status = proxy.status();
  print(
    `proxy: listening on ${proxy.url} (${status.attested ? 'enclave attested' : 'enclave NOT attested'})`,
  );
  await stopped;
  await proxy.close();
  return 0;
}
