/** `nitro-infer models load|unload|list`: the parent's admin API with a bearer token. */
import { readFile } from 'node:fs/promises';
import { CliError, ERROR_CODES, NitroInferError } from '../shared/errors.ts';
import type { ErrorCode } from '../shared/errors.ts';
import { parseFlags } from './cli-input.ts';
import type { CommandOutput } from './cli-output.ts';

export const MODELS_HELP = `Usage: nitro-infer models list                 --endpoint <url> [--token-file <file>]
       nitro-infer models load <name> <source>  --endpoint <url> [--token-file <file>]
       nitro-infer models unload <name>         --endpoint <url> [--token-file <file>]

Operator commands against the parent's admin API. <source> is s3://bucket/key?versionId=… (the
version is required in production) or file:///path in simulation. The bearer token comes from
--token-file (a file holding the token, or {"tokens": ["…"]}) or NITRO_INFER_ADMIN_TOKEN.

Options:
  --endpoint <url>      the parent's base URL (or NITRO_INFER_ENDPOINT)
  --token-file <file>   the admin token
  --json                print compact JSON
  -h, --help            show this help`;

const KNOWN: ReadonlySet<string> = new Set(ERROR_CODES);

export async function models(args: readonly string[]): Promise<CommandOutput> {
  const { values, positionals } = parseFlags(
    args,
    {
      endpoint: { type: 'string' },
      'token-file': { type: 'string' },
      json: { type: 'boolean' },
    },
    true,
  );
  if (values.help === true || positionals.length === 0)
    return { exitCode: values.help === true ? 0 : 2, stdout: MODELS_HELP };
  const endpoint = (values.endpoint ?? process.env.NITRO_INFER_ENDPOINT)?.replace(/\/+$/, '');
  if (endpoint === undefined || !/^https?:\/\//.test(endpoint))
    throw new CliError('ERR_CLI_USAGE', '--endpoint <url> is required');
  const token = await readToken(values['token-file']);
  const [action, name, source] = positionals as [string, string | undefined, string | undefined];
  let method: string;
  let route: string;
  let body: string | undefined;
  if (action === 'list' && positionals.length === 1) {
    method = 'GET';
    route = '/admin/models';
  } else if (action === 'load' && name !== undefined && source !== undefined && positionals.length === 3) {
    method = 'PUT';
    route = `/admin/models/${encodeURIComponent(name)}`;
    body = JSON.stringify({ source });
  } else if (action === 'unload' && name !== undefined && positionals.length === 2) {
    method = 'DELETE';
    route = `/admin/models/${encodeURIComponent(name)}`;
  } else {
    throw new CliError('ERR_CLI_USAGE', `see \`nitro-infer models --help\``);
  }
  const reply = await fetch(endpoint + route, {
    method,
    headers: {
      authorization: `Bearer ${token}`,
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    ...(body === undefined ? {} : { body }),
  });
  const text = await reply.text();
  let json: { error?: { code?: string; message?: string } } & Record<string, unknown>;
  try {
    json = JSON.parse(text);
  } catch {
    throw new CliError('ERR_CLI_INPUT', `the parent answered HTTP ${reply.status} without JSON`);
  }
  if (reply.status !== 200) {
    const code = json.error?.code;
    throw new NitroInferError(
      typeof code === 'string' && KNOWN.has(code) ? (code as ErrorCode) : 'ERR_CLIENT_REQUEST_FAILED',
      `HTTP ${reply.status}: ${json.error?.message ?? 'error'}`,
    );
  }
  return { exitCode: 0, stdout: JSON.stringify(json, null, values.json === true ? undefined : 2) };
}

async function readToken(file: string | undefined): Promise<string> {
  if (file === undefined) {
    const token = process.env.NITRO_INFER_ADMIN_TOKEN;
    if (token === undefined)
      throw new CliError('ERR_CLI_USAGE', '--token-file <file> (or NITRO_INFER_ADMIN_TOKEN) is required');
    return token;
  }
  let text: string;
  try {
    text = (await readFile(file, 'utf8')).trim();
  } catch {
    throw new CliError('ERR_CLI_INPUT', `cannot read ${file}`);
  }
  if (text.startsWith('{')) {
    const tokens = (JSON.parse(text) as { tokens?: unknown }).tokens;
    if (Array.isArray(tokens) && typeof tokens[0] === 'string') return tokens[0];
    throw new CliError('ERR_CLI_INPUT', `${file} has no tokens`);
  }
  return text;
}
