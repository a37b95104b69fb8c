/** Configuration: defaults, environment overrides, every wrong field named, frozen results. */
import { describe, expect, it } from 'vitest';
import {
  EnclaveConfigSchema,
  ParentConfigSchema,
  environmentVariables,
  resolveConfig,
} from '../../../shared/config.ts';
import { isNitroInferError } from '../../../shared/errors.ts';

function messageOf(action: () => unknown): string {
  try {
    action();
  } catch (error) {
    if (isNitroInferError(error) && error.code === 'ERR_CONFIG_INVALID') return error.message;
    throw error;
  }
  throw new Error('accepted');
}

const minimalParent = { aws: { region: 'eu-west-1' } };

describe('configuration', () => {
  it('applies defaults and lets the environment override the file', () => {
    const config = resolveConfig(
      ParentConfigSchema,
      { aws: { region: 'eu-west-1' }, http: { port: 8081 } },
      {
        NITRO_INFER_HTTP_PORT: '9090',
        NITRO_INFER_HTTP_RATE_LIMIT_MAX: '5',
        NITRO_INFER_S3_FORCE_PATH_STYLE: 'true',
      },
    );
    expect(config.mode).toBe('production');
    expect(config.http.port).toBe(9090);
    expect(config.http.rateLimit.max).toBe(5);
    expect(config.s3.forcePathStyle).toBe(true);
    expect(config.enclave.address).toBe('vsock:16:5000');
    expect(Object.isFrozen(config.http.rateLimit)).toBe(true);
  });

  it('gives the enclave link limits their defaults and takes overrides from the environment', () => {
    const config = resolveConfig(
      EnclaveConfigSchema,
      { kms: { region: 'eu-west-1' } },
      {
        NITRO_INFER_LINK_MAX_CONNECTIONS: '4',
      },
    );
    expect(config.link).toEqual({
      maxConnections: 4,
      maxBufferedMib: 128,
      incompleteFrameTimeoutMs: 30_000,
      drainTimeoutMs: 30_000,
    });
    expect(() =>
      resolveConfig(EnclaveConfigSchema, { kms: { region: 'eu-west-1' }, link: { maxBufferedMib: 64 } }, {}),
    ).toThrow(/maxBufferedMib/);
  });

  it('names every wrong field and never falls back to a default on bad input', () => {
    const message = messageOf(() =>
      resolveConfig(
        ParentConfigSchema,
        { mode: 'prod', http: { port: 'eighty', extra: true }, aws: {} },
        { NITRO_INFER_ENCLAVE_MAX_IN_FLIGHT: 'many' },
      ),
    );
    expect(message).toContain('NITRO_INFER_ENCLAVE_MAX_IN_FLIGHT: "many" is not a number');
    expect(message).toContain('mode: must be one of "production", "simulation"');
    expect(message).toContain('unknown field http.extra');
    expect(message).toContain('http.port');
    expect(message).toContain('missing field aws.region');
  });

  it.each([
    [{ kms: { region: 'us-east-1' }, memoryBudgetMib: 1 }, 'memoryBudgetMib'],
    [{ kms: { region: 'mars' } }, 'kms.region'],
    [{ kms: { region: 'us-east-1', allowedKeyArns: ['not-an-arn'] } }, 'kms.allowedKeyArns'],
    [{ kms: { region: 'us-east-1' }, nsm: 'fake' }, 'nsm'],
    [{ kms: { region: 'us-east-1' }, replay: { windowSeconds: 0 } }, 'replay.windowSeconds'],
    [{ kms: { region: 'us-east-1' }, replay: { cacheEntries: 10 } }, 'replay.cacheEntries'],
    [[], 'top level'],
  ])('enclave config %j is refused naming %s', (file, field) => {
    expect(messageOf(() => resolveConfig(EnclaveConfigSchema, file, {}))).toContain(field);
  });

  it('refuses an unknown NITRO_INFER_ variable and names the closest known one', () => {
    const message = messageOf(() =>
      resolveConfig(ParentConfigSchema, minimalParent, { NITRO_INFER_HTTP_PROT: '9090' }),
    );
    expect(message).toContain('unknown environment variable NITRO_INFER_HTTP_PROT');
    expect(message).toContain('did you mean NITRO_INFER_HTTP_PORT?');
    // Control: the correct spelling is applied, and the other side's variables (one environment
    // serves both in the local stack) and the CLI's own are not "unknown".
    const config = resolveConfig(ParentConfigSchema, minimalParent, {
      NITRO_INFER_HTTP_PORT: '9090',
      NITRO_INFER_KMS_PROXY: 'unix:/tmp/kms.sock',
      NITRO_INFER_ENDPOINT: 'http://127.0.0.1:8080',
    });
    expect(config.http.port).toBe(9090);
  });

  it.each([' 80 ', '80 ', '8e1', '0x50', '+80', ''])('refuses the number %j from the environment', (raw) => {
    expect(
      messageOf(() => resolveConfig(ParentConfigSchema, minimalParent, { NITRO_INFER_HTTP_PORT: raw })),
    ).toContain('NITRO_INFER_HTTP_PORT');
  });

  it('the enclave replay window defaults to ±60 s and 65 536 entries; the environment overrides it', () => {
    const defaults = resolveConfig(EnclaveConfigSchema, { kms: { region: 'us-east-1' } }, {});
    expect(defaults.replay).toEqual({ windowSeconds: 60, cacheEntries: 65_536 });
    const overridden = resolveConfig(
      EnclaveConfigSchema,
      { kms: { region: 'us-east-1' } },
      { NITRO_INFER_REPLAY_WINDOW_SECONDS: '30' },
    );
    expect(overridden.replay.windowSeconds).toBe(30);
  });

  it('lists one environment variable per leaf', () => {
    expect(environmentVariables(EnclaveConfigSchema)).toContain('NITRO_INFER_KMS_PROXY');
    expect(environmentVariables(ParentConfigSchema)).toContain('NITRO_INFER_HTTP_RATE_LIMIT_WINDOW_MS');
  });
});
