/**
 * `nitro-infer receipts verify FILE`: checks a receipt log written by `nitro-infer proxy
 * --receipts` offline (proxy/receipt-log.ts): every recorded attestation against the PCR policy
 * and roots, every receipt's signature against the receipt key that attestation binds.
 */
import { readFile } from 'node:fs/promises';
import { AWS_NITRO_ROOT_G1_DER } from '../shared/attestation/index.ts';
import { CliError } from '../shared/errors.ts';
import { verifyReceiptLog } from '../proxy/receipt-log.ts';
import { expectedPcrsFromFlags, rootsFromFiles } from './attest-verify.ts';
import { parseFlags } from './cli-input.ts';
import type { CommandOutput } from './cli-output.ts';

export const RECEIPTS_HELP = `Usage: nitro-infer receipts verify <file> (--pcrs <file> | --expect-pcr <i>=<hex>) [options]

Checks a receipt log (JSON lines from \`nitro-infer proxy --receipts\`) offline: each attestation
document against the roots and PCRs, as of its own signing time, and the key config, receipt key
and models it binds; each receipt's signature against the receipt key of the attestation before
it, and its model digest against that attestation's model list; each line's path must name its
receipt's model, a receipt may appear once, and a log without a receipt is not verified. The log
shows what was answered; it cannot show that no receipt line was deleted.

Options:
  --pcrs <file>             expected PCRs: a nitro-cli pcrs.json / build-enclave output
  --expect-pcr <i>=<hex>    expected PCR i (repeatable; PCR0 is required)
  --root <pem file>         trust this Nitro root instead of AWS's
  --allow-debug             accept debug-mode documents
  --json                    print one JSON object
  -h, --help                show this help

Exit status: 0 every line verified, 1 a line did not, 2 usage or input error.`;

/** Largest log read at once. */
const MAX_LOG_BYTES = 256 * 1024 * 1024;

export async function receipts(args: readonly string[]): Promise<CommandOutput> {
  const [action, ...rest] = args;
  if (action === '--help' || action === '-h' || action === undefined)
    return { exitCode: action === undefined ? 2 : 0, stdout: RECEIPTS_HELP };
  if (action !== 'verify')
    throw new CliError('ERR_CLI_USAGE', `unknown receipts action ${JSON.stringify(action)}`);
  const { values, positionals } = parseFlags(
    rest,
    {
      pcrs: { type: 'string' },
      'expect-pcr': { type: 'string', multiple: true },
      root: { type: 'string', multiple: true },
      'allow-debug': { type: 'boolean' },
      json: { type: 'boolean' },
    },
    true,
  );
  if (values.help === true) return { exitCode: 0, stdout: RECEIPTS_HELP };
  const [file] = positionals;
  if (file === undefined || positionals.length > 1)
    throw new CliError('ERR_CLI_USAGE', 'receipts verify takes one log file');
  const expectedPcrs = await expectedPcrsFromFlags(values);
  if (!expectedPcrs.has(0))
    throw new CliError('ERR_CLI_USAGE', 'pin the enclave image: --pcrs <pcrs.json> or --expect-pcr 0=<hex>');
  const roots = await rootsFromFiles(values.root ?? []);
  let text: string;
  try {
    const bytes = await readFile(file);
    if (bytes.byteLength > MAX_LOG_BYTES)
      throw new CliError('ERR_CLI_INPUT', `${file} is larger than ${MAX_LOG_BYTES} bytes`);
    text = bytes.toString('utf8');
  } catch (error) {
    if (error instanceof CliError) throw error;
    throw new CliError(
      'ERR_CLI_INPUT',
      `cannot read ${file}: ${(error as NodeJS.ErrnoException).code ?? 'error'}`,
    );
  }
  const verdict = verifyReceiptLog(text, {
    expectedPcrs,
    roots: roots.length === 0 ? [AWS_NITRO_ROOT_G1_DER] : roots,
    allowDebug: values['allow-debug'] === true,
  });
  const exitCode = verdict.ok ? 0 : 1;
  if (values.json === true) return { exitCode, stdout: JSON.stringify(verdict) };
  const summary = `${verdict.attestations} attestations, ${verdict.receipts} receipts verified`;
  if (verdict.ok) return { exitCode, stdout: `verified: ${summary}` };
  const reasons = verdict.failures.map((failure) => `  line ${failure.line}: ${failure.reason}`);
  return {
    exitCode,
    stdout: [`NOT verified: ${summary}, ${verdict.failures.length} lines failed`, ...reasons].join('\n'),
  };
}
