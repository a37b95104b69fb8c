/**
 * Environment values of every schema type (strings, comma lists, booleans) and prototype keys in
 * configuration files: an unknown key is fatal even when it is "__proto__" or "constructor", and
 * nothing reaches Object.prototype.
 */
import { describe, expect, it } from 'vitest';
import { EnclaveConfigSchema, ParentConfigSchema, resolveConfig } from '../../../shared/config.ts';
import { codeOf } from '../../helpers/codes.ts';

describe('configuration from the environment and hostile files', () => {
  it('reads strings and comma-separated lists (blank items dropped) from the environment', () => {
    const config = resolveConfig(
      EnclaveConfigSchema,
      { kms: { region: 'us-east-1' } },
      {
        NITRO_INFER_KMS_REGION: 'eu-west-1',
        NITRO_INFER_KMS_ALLOWED_KEY_ARNS: ' arn:aws:kms:eu-west-1:1:key/a, ,arn:aws:kms:eu-west-1:1:key/b,',
      },
    );
    expect(config.kms.region).toBe('eu-west-1');
    expect(config.kms.allowedKeyArns).toEqual([
      'arn:aws:kms:eu-west-1:1:key/a',
      'arn:aws:kms:eu-west-1:1:key/b',
    ]);
  });

  it.each([
    ['a boolean that is not true or false', { NITRO_INFER_S3_FORCE_PATH_STYLE: 'yes' }],
    ['a number with a unit', { NITRO_INFER_HTTP_PORT: '80px' }],
  ])('refuses %s', (_what, env) => {
    expect(codeOf(() => resolveConfig(ParentConfigSchema, { aws: { region: 'eu-west-1' } }, env))).toBe(
      'ERR_CONFIG_INVALID',
    );
  });

  it.each(['__proto__', 'constructor', 'toString'])(
    'refuses %s as a file key, at the top and nested',
    (key) => {
      for (const json of [
        `{${JSON.stringify(key)}: {"memoryBudgetMib": 16}, "kms": {"region": "us-east-1"}}`,
        `{"kms": {"region": "us-east-1", ${JSON.stringify(key)}: {"polluted": true}}}`,
      ]) {
        expect(codeOf(() => resolveConfig(EnclaveConfigSchema, JSON.parse(json), {}))).toBe(
          'ERR_CONFIG_INVALID',
        );
      }
      expect(({} as Record<string, unknown>).polluted).toBeUndefined();
      expect(({} as Record<string, unknown>).memoryBudgetMib).toBeUndefined();
    },
  );
});
