/**
 * `nitro-infer attest verify <file>`: verify an attestation document offline.
 *
 * Contract (other tools rely on it): exit 0 and a summary when the document is valid under the
 * given policy; exit 1 with the error code and a one-line reason when it is not; exit 2 for wrong
 * arguments or unreadable input. `--json` prints one JSON object either way.
 */
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import {
  hexToBytes,
  mergeExpectedPcrs,
  normalizeExpectedPcrs,
  parseNitroCliMeasurements,
  rootCertificatesToDer,
  verifyAttestation,
} from '../shared/attestation/index.ts';
import type { VerifiedAttestation, VerifyAttestationOptions } from '../shared/attestation/index.ts';
import { CliError, isNitroInferError } from '../shared/errors.ts';
import { parseDuration, parseTime, readInput } from './cli-input.ts';
import type { CommandOutput } from './cli-output.ts';

export const ATTEST_VERIFY_HELP = `Usage: nitro-infer attest verify <file|-> [options]

Verifies a Nitro Enclaves attestation document (raw COSE_Sign1 bytes, base64 or hex; detected
automatically) against the AWS Nitro Enclaves root, or the roots given with --root.

Options:
  --at <time>               verify as of this instant (ISO 8601 or epoch milliseconds; default now)
  --root <file>             trust this root instead of AWS's: PEM (one or more) or DER (repeatable)
  --expect-pcr <i>=<hex>    require PCR i to equal hex (repeatable; i from 0 to 31)
  --pcrs <file>             require the PCRs in a nitro-cli build-enclave JSON output
  --nonce <hex>             require this nonce
  --max-age <duration>      reject documents older than this (e.g. 500ms, 30s, 5m, 1h)
  --allow-debug             accept debug-mode documents (PCR0/1/2 zero)
  --json                    print one JSON object
  -h, --help                show this help

Exit status: 0 valid, 1 invalid (the error code is printed), 2 usage or input error.`;

/** Runs the verb; returns what to print and the exit status. */
export async function attestVerify(
  args: readonly string[],
  stdin: () => Promise<Buffer>,
): Promise<CommandOutput> {
  const { values, positionals } = parseOrUsage(args);
  if (values.help === true) return { exitCode: 0, stdout: ATTEST_VERIFY_HELP };
  if (positionals.length !== 1)
    throw new CliError('ERR_CLI_USAGE', 'expected exactly one document file (or - for stdin)');

  const options = await policyFromFlags(values);
  const bytes = await readInput(positionals[0] as string, stdin);
  const json = values.json === true;
  try {
    const verified = verifyAttestation(bytes, options);
    return { exitCode: 0, stdout: json ? JSON.stringify(summaryJson(verified)) : summaryText(verified) };
  } catch (error) {
    if (!isNitroInferError(error)) throw error;
    return json
      ? { exitCode: 1, stdout: JSON.stringify({ valid: false, code: error.code, message: error.message }) }
      : { exitCode: 1, stderr: `invalid: ${error.code}: ${error.message}` };
  }
}

type Flags = ReturnType<typeof parseOrUsage>['values'];

function parseOrUsage(args: readonly string[]) {
  try {
    return parseArgs({
      args: [...args],
      allowPositionals: true,
      strict: true,
      options: {
        at: { type: 'string' },
        root: { type: 'string', multiple: true },
        'expect-pcr': { type: 'string', multiple: true },
        pcrs: { type: 'string' },
        nonce: { type: 'string' },
        'max-age': { type: 'string' },
        'allow-debug': { type: 'boolean' },
        json: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (error) {
    throw new CliError('ERR_CLI_USAGE', (error as Error).message);
  }
}

/**
 * `--pcrs <nitro-cli json>` and repeated `--expect-pcr <i>=<hex>`, merged (the CLI's one reader).
 * Two different values for one index, from either flag, are refused (`ERR_POLICY_INVALID`, exit 2)
 * rather than letting the last one win.
 */
export async function expectedPcrsFromFlags(values: {
  pcrs?: string | undefined;
  'expect-pcr'?: string[] | undefined;
}): Promise<ReadonlyMap<number, Uint8Array>> {
  const sources: ReadonlyMap<number, Uint8Array>[] = [];
  if (values.pcrs !== undefined) sources.push(parseNitroCliMeasurements(await readText(values.pcrs)));
  for (const expectation of values['expect-pcr'] ?? []) {
    const match = /^(\d{1,2})=(?:0x)?([0-9a-fA-F]+)$/.exec(expectation);
    if (match === null)
      throw new CliError(
        'ERR_CLI_USAGE',
        `--expect-pcr takes <index>=<hex>, got ${JSON.stringify(expectation)}`,
      );
    sources.push(normalizeExpectedPcrs({ [match[1] as string]: match[2] as string }));
  }
  return mergeExpectedPcrs(sources);
}

async function policyFromFlags(values: Flags): Promise<VerifyAttestationOptions> {
  const pcrs = await expectedPcrsFromFlags(values);
  const roots = await rootsFromFiles(values.root ?? []);
  return {
    expectedPcrs: pcrs,
    allowDebug: values['allow-debug'] === true,
    ...(values.at === undefined ? {} : { at: parseTime(values.at) }),
    ...(roots.length === 0 ? {} : { roots }),
    ...(values.nonce === undefined ? {} : { nonce: hexToBytes(values.nonce, '--nonce') }),
    ...(values['max-age'] === undefined ? {} : { maxAgeMs: parseDuration(values['max-age']) }),
  };
}

/**
 * `--root <file>` (repeatable): PEM (one or several certificates) or DER. A file that holds no
 * certificate is `ERR_CLI_INPUT` naming the file, not an untrusted enclave later.
 */
export async function rootsFromFiles(files: readonly string[]): Promise<Uint8Array[]> {
  const roots: Uint8Array[] = [];
  for (const file of files) {
    let bytes: Uint8Array;
    try {
      bytes = await readFile(file);
    } catch (error) {
      throw new CliError(
        'ERR_CLI_INPUT',
        `cannot read ${file}: ${(error as NodeJS.ErrnoException).code ?? 'error'}`,
      );
    }
    try {
      roots.push(...rootCertificatesToDer(bytes, file));
    } catch (error) {
      throw new CliError('ERR_CLI_INPUT', (error as Error).message);
    }
  }
  return roots;
}

export async function readText(file: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (error) {
    throw new CliError(
      'ERR_CLI_INPUT',
      `cannot read ${file}: ${(error as NodeJS.ErrnoException).code ?? 'error'}`,
    );
  }
}

function hex(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('hex');
}

function summaryJson({ document, debugMode }: VerifiedAttestation) {
  return {
    valid: true,
    moduleId: document.moduleId,
    timestamp: document.timestamp,
    time: new Date(document.timestamp).toISOString(),
    debugMode,
    pcrs: Object.fromEntries([...document.pcrs].map(([index, value]) => [String(index), hex(value)])),
    publicKeyBytes: document.publicKey?.byteLength ?? null,
    userDataBytes: document.userData?.byteLength ?? null,
    nonceBytes: document.nonce?.byteLength ?? null,
  };
}

function summaryText(verified: VerifiedAttestation): string {
  const summary = summaryJson(verified);
  const size = (bytes: number | null) => (bytes === null ? 'absent' : `${bytes} bytes`);
  return [
    'valid attestation document',
    `  module id   ${summary.moduleId}`,
    `  time        ${summary.time} (${summary.timestamp})`,
    `  debug mode  ${summary.debugMode ? 'yes (PCR0/1/2 are zero; not confidential)' : 'no'}`,
    ...Object.entries(summary.pcrs).map(([index, value]) => `  PCR${index.padEnd(9)}${value}`),
    `  public key  ${size(summary.publicKeyBytes)}`,
    `  user data   ${size(summary.userDataBytes)}`,
    `  nonce       ${size(summary.nonceBytes)}`,
  ].join('\n');
}
