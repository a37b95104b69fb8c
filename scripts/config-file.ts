/** Reads a configuration file (JSON or YAML by extension) and resolves it with the environment. */
import { readFile } from 'node:fs/promises';
import type { TSchema, Static } from 'typebox';
import { parse as parseYaml } from 'yaml';
import { resolveConfig } from '../shared/config.ts';
import { ConfigError } from '../shared/errors.ts';

/** Largest configuration file read. */
const MAX_CONFIG_BYTES = 1024 * 1024;

export async function loadConfigFile<S extends TSchema>(
  schema: S,
  file: string | undefined,
  env: Readonly<Record<string, string | undefined>> = process.env,
): Promise<Static<S>> {
  if (file === undefined) return resolveConfig(schema, {}, env, 'configuration (environment only)');
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    throw new ConfigError(
      'ERR_CONFIG_INVALID',
      `cannot read ${file}: ${(error as NodeJS.ErrnoException).code ?? 'error'}`,
    );
  }
  if (text.length > MAX_CONFIG_BYTES) throw new ConfigError('ERR_CONFIG_INVALID', `${file} is over 1 MiB`);
  let parsed: unknown;
  try {
    parsed = /\.ya?ml$/i.test(file) ? parseYaml(text, { maxAliasCount: 0 }) : JSON.parse(text);
  } catch (error) {
    throw new ConfigError(
      'ERR_CONFIG_INVALID',
      `${file} does not parse: ${(error as Error).message.split('\n')[0]}`,
    );
  }
  return resolveConfig(schema, parsed ?? {}, env, file);
}
