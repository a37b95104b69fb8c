/**
 * Reading command-line inputs: document files in any of the encodings people paste them in,
 * times and durations.
 */
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import type { ParseArgsConfig } from 'node:util';

type ParseArgsOptionsConfig = NonNullable<ParseArgsConfig['options']>;
import { MAX_ATTESTATION_DOCUMENT_BYTES } from '../shared/attestation/index.ts';
import { CliError } from '../shared/errors.ts';

/** Base64 or hex text of a maximum-size document, plus generous room for line breaks. */
const MAX_INPUT_BYTES = MAX_ATTESTATION_DOCUMENT_BYTES * 3;

/**
 * Reads `file` (or standard input for `-`) and returns the bytes it encodes: raw CBOR is kept as
 * is; otherwise the text is decoded as hex or base64 (standard or URL-safe), whichever it is.
 */
export async function readInput(file: string, stdin: () => Promise<Buffer>): Promise<Uint8Array> {
  let content: Buffer;
  try {
    content = file === '-' ? await stdin() : await readFile(file);
  } catch (error) {
    throw new CliError(
      'ERR_CLI_INPUT',
      `cannot read ${file}: ${(error as NodeJS.ErrnoException).code ?? 'error'}`,
    );
  }
  if (content.byteLength > MAX_INPUT_BYTES) {
    throw new CliError(
      'ERR_CLI_INPUT',
      `${file} is larger than any attestation document (${content.byteLength} bytes)`,
    );
  }
  return decodeDocumentBytes(content);
}

/** Detects raw, hex or base64 input. Raw COSE_Sign1 starts with 0x84 (array of 4) or 0xd2 (tag 18). */
export function decodeDocumentBytes(content: Uint8Array): Uint8Array {
  const first = content[0];
  if (first === 0x84 || first === 0xd2) return content;
  const text = Buffer.from(content).toString('latin1').replace(/\s+/g, '');
  if (text.length > 0 && text.length % 2 === 0 && /^[0-9a-fA-F]+$/.test(text)) {
    return new Uint8Array(Buffer.from(text, 'hex'));
  }
  if (/^[A-Za-z0-9+/_-]+={0,2}$/.test(text)) {
    const bytes = Buffer.from(text, /[-_]/.test(text) ? 'base64url' : 'base64');
    if (bytes.byteLength > 0) return new Uint8Array(bytes);
  }
  throw new CliError('ERR_CLI_INPUT', 'the input is neither a COSE document nor its hex or base64 text');
}

/** Parses an ISO 8601 time or a number of epoch milliseconds. */
export function parseTime(text: string): number {
  const time = /^\d+$/.test(text) ? Number(text) : Date.parse(text);
  if (!Number.isSafeInteger(time)) throw new CliError('ERR_CLI_USAGE', `not a time: ${JSON.stringify(text)}`);
  return time;
}

const DURATION_UNITS_MS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;

/** Parses `500ms`, `30s`, `5m`, `1h`, `2d`; a bare number means milliseconds. */
export function parseDuration(text: string): number {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$/.exec(text);
  if (match === null)
    throw new CliError('ERR_CLI_USAGE', `not a duration: ${JSON.stringify(text)} (try 30s, 5m, 1h)`);
  const unit = (match[2] ?? 'ms') as keyof typeof DURATION_UNITS_MS;
  return Math.round(Number(match[1]) * DURATION_UNITS_MS[unit]);
}

/** Largest JSON request read by `infer` (the enclave's own body limit). */
export const MAX_JSON_INPUT_BYTES = 32 * 1024 * 1024;

/** Reads a JSON file (or standard input for `-`). */
export async function readJsonInput(file: string, stdin: () => Promise<Buffer>): Promise<unknown> {
  let content: Buffer;
  try {
    content = file === '-' ? await stdin() : await readFile(file);
  } catch (error) {
    throw new CliError(
      'ERR_CLI_INPUT',
      `cannot read ${file}: ${(error as NodeJS.ErrnoException).code ?? 'error'}`,
    );
  }
  if (content.byteLength > MAX_JSON_INPUT_BYTES)
    throw new CliError('ERR_CLI_INPUT', `${file} is over 32 MiB`);
  try {
    return JSON.parse(content.toString('utf8'));
  } catch {
    throw new CliError('ERR_CLI_INPUT', `${file} is not JSON`);
  }
}

/**
 * Parses a verb's flags strictly (unknown flags are errors) with `-h/--help` added; a parse error
 * is `ERR_CLI_USAGE`. One place for what every verb needs.
 */
export function parseFlags<O extends ParseArgsOptionsConfig>(
  args: readonly string[],
  options: O,
  allowPositionals = false,
) {
  try {
    return parseArgs({
      args: [...args],
      strict: true,
      allowPositionals,
      options: { ...options, help: { type: 'boolean', short: 'h' } } as O & {
        help: { type: 'boolean'; short: 'h' };
      },
    });
  } catch (error) {
    throw new CliError('ERR_CLI_USAGE', (error as Error).message);
  }
}
