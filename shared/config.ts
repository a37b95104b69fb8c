/**
 * Start-up configuration of both sides (STYLE.md 5): one schema covers the file and the environment,
 * unknown keys and unparsable values are fatal (never a silent default on bad input), every wrong
 * field is named, and the result is deep-frozen. Environment variables override the file: a field at
 * `http.port` is `NITRO_INFER_HTTP_PORT`; `rateLimit.max` in `http` is `NITRO_INFER_HTTP_RATE_LIMIT_MAX`.
 * No I/O here: callers read the file and pass the parsed object and the environment.
 */
import { Type } from 'typebox';
import type { Static, TSchema } from 'typebox';
import { Value } from 'typebox/value';
import { ConfigError } from './errors.ts';

/** Prefix of every environment variable the configuration reads. */
export const ENV_PREFIX = 'NITRO_INFER_';

const Address = Type.String({
  minLength: 6,
  maxLength: 200,
  description: 'vsock:<cid>:<port>, unix:<path> or tcp:<host>:<port>',
});
const Region = Type.String({ pattern: '^[a-z]{2}(-[a-z]+)+-\\d$' });
const LogLevel = Type.Union(
  [Type.Literal('debug'), Type.Literal('info'), Type.Literal('warn'), Type.Literal('error')],
  { default: 'info' },
);
const closed = { additionalProperties: false } as const;

/** The enclave's configuration (`nitro-infer enclave --config …`). Baked into the image in production. */
export const EnclaveConfigSchema = Type.Object(
  {
    /** Where the link listens: any CID, port 5000 by default. */
    listen: Type.String({ ...Address, default: 'vsock:any:5000' }),
    nsm: Type.Union([Type.Literal('device'), Type.Literal('simulated')], { default: 'device' }),
    /** Simulation only: the simulated PKI that signs for the simulated NSM. */
    simulation: Type.Optional(
      Type.Object(
        { pkiFile: Type.String({ minLength: 1 }), projectRoot: Type.Optional(Type.String({ minLength: 1 })) },
        closed,
      ),
    ),
    kms: Type.Object(
      {
        region: Region,
        /** The parent's vsock-proxy (CID 3 = the parent, port 8000) or a Unix socket in simulation. */
        proxy: Type.String({ ...Address, default: 'vsock:3:8000' }),
        /** Extra CA (PEM file) to trust: the KMS simulator's, in simulation. */
        caFile: Type.Optional(Type.String({ minLength: 1 })),
        allowedKeyArns: Type.Optional(
          Type.Array(Type.String({ pattern: '^arn:aws[a-z-]*:kms:' }), { minItems: 1 }),
        ),
      },
      closed,
    ),
    memoryBudgetMib: Type.Integer({ minimum: 16, maximum: 1_048_576, default: 2048 }),
    /** Link limits (enclave/server/link-server.ts explains each default). */
    link: Type.Object(
      {
        maxConnections: Type.Integer({ minimum: 1, maximum: 64, default: 8 }),
        /** Bytes of large frames all connections may hold; at least one largest frame (64 MiB). */
        maxBufferedMib: Type.Integer({ minimum: 65, maximum: 65_536, default: 128 }),
        incompleteFrameTimeoutMs: Type.Integer({ minimum: 1_000, maximum: 600_000, default: 30_000 }),
        /** On SIGTERM: how long requests in flight may take to finish before the enclave exits anyway. */
        drainTimeoutMs: Type.Integer({ minimum: 0, maximum: 600_000, default: 30_000 }),
      },
      { ...closed, default: {} },
    ),
    /** Inference worker threads; 0 = one per vCPU. */
    inferenceWorkers: Type.Integer({ minimum: 0, maximum: 256, default: 0 }),
    /**
     * OHTTP anti-replay (RFC 9458 section 6.5; enclave/gateway/replay-window.ts): how far a request's
     * Date may be from the enclave's clock, and how many requests the window remembers (≈150 bytes
     * each; size it to the window's traffic: entries live up to 2 × windowSeconds).
     */
    replay: Type.Object(
      {
        windowSeconds: Type.Integer({ minimum: 1, maximum: 600, default: 60 }),
        cacheEntries: Type.Integer({ minimum: 1024, maximum: 4_194_304, default: 65_536 }),
      },
      { ...closed, default: {} },
    ),
    logLevel: LogLevel,
  },
  closed,
);
export type EnclaveConfig = Static<typeof EnclaveConfigSchema>;

/** The parent's configuration (`nitro-infer parent --config …`). */
export const ParentConfigSchema = Type.Object(
  {
    /** `production` pins S3 versions and refuses file sources and static keys. */
    mode: Type.Union([Type.Literal('production'), Type.Literal('simulation')], { default: 'production' }),
    http: Type.Object(
      {
        host: Type.String({ minLength: 1, default: '127.0.0.1' }),
        port: Type.Integer({ minimum: 0, maximum: 65_535, default: 8080 }),
        ohttpBodyLimitBytes: Type.Integer({
          minimum: 1024,
          maximum: 64 * 1024 * 1024,
          default: 8 * 1024 * 1024,
        }),
        requestTimeoutMs: Type.Integer({ minimum: 1000, maximum: 600_000, default: 60_000 }),
        inferenceTimeoutMs: Type.Integer({ minimum: 100, maximum: 600_000, default: 30_000 }),
        /** On SIGTERM: how long requests in flight may take to finish before the parent exits anyway. */
        drainTimeoutMs: Type.Integer({ minimum: 0, maximum: 600_000, default: 30_000 }),
        rateLimit: Type.Object(
          {
            max: Type.Integer({ minimum: 1, maximum: 10_000_000, default: 600 }),
            windowMs: Type.Integer({ minimum: 1000, maximum: 3_600_000, default: 60_000 }),
          },
          { ...closed, default: {} },
        ),
      },
      { ...closed, default: {} },
    ),
    enclave: Type.Object(
      {
        /** The enclave's link: its CID and port (vsock), or a Unix socket in simulation. */
        address: Type.String({ ...Address, default: 'vsock:16:5000' }),
        requestTimeoutMs: Type.Integer({ minimum: 100, maximum: 600_000, default: 30_000 }),
        maxInFlight: Type.Integer({ minimum: 1, maximum: 100_000, default: 1024 }),
        /**
         * How often the parent polls the enclave's telemetry (parent/link/telemetry-poller.ts); at
         * least 250 ms, the enclave's refill rate (TELEMETRY_POLLS_PER_SECOND).
         */
        telemetryIntervalMs: Type.Integer({ minimum: 250, maximum: 600_000, default: 5_000 }),
        /**
         * Link connections (parent/link/enclave-link.ts): one bulk lane for uploads and large bodies,
         * the rest for small requests. At most the enclave's default `link.maxConnections` (8).
         */
        connections: Type.Integer({ minimum: 1, maximum: 8, default: 4 }),
      },
      { ...closed, default: {} },
    ),
    admin: Type.Object(
      {
        /** A file holding `{"tokens": ["…"]}` (simulation, or a file provisioned by the operator). */
        tokensFile: Type.Optional(Type.String({ minLength: 1 })),
        /** A Secrets Manager secret id holding the same JSON (production). */
        tokensSecretId: Type.Optional(Type.String({ minLength: 1, maxLength: 2048 })),
      },
      { ...closed, default: {} },
    ),
    aws: Type.Object(
      { region: Region, secretsManagerEndpoint: Type.Optional(Type.String({ pattern: '^https://' })) },
      closed,
    ),
    s3: Type.Object(
      {
        endpoint: Type.Optional(Type.String({ pattern: '^https?://' })),
        forcePathStyle: Type.Boolean({ default: false }),
        /** Simulation only: static keys for a local S3 (RADOS Gateway). */
        accessKeyId: Type.Optional(Type.String({ minLength: 1 })),
        secretAccessKey: Type.Optional(Type.String({ minLength: 1 })),
      },
      { ...closed, default: {} },
    ),
    /**
     * The OHTTP cluster key's peer exchange (docs/protocols.md "Cluster key"): the listener peer
     * parents call (never behind the public load balancer), who the peers are, and the schedule.
     * Absent: a single instance whose enclave keeps the key it generated.
     */
    cluster: Type.Optional(
      Type.Object(
        {
          listen: Type.Object(
            {
              host: Type.String({ minLength: 1, default: '0.0.0.0' }),
              port: Type.Integer({ minimum: 0, maximum: 65_535, default: 8444 }),
            },
            { ...closed, default: {} },
          ),
          /** Peer parents' cluster listeners, e.g. `http://10.0.1.7:8444`. */
          peers: Type.Array(Type.String({ pattern: '^https?://', maxLength: 2048 }), {
            maxItems: 64,
            default: [],
          }),
          /** On AWS: also every running instance of this Auto Scaling group (EC2 DescribeInstances). */
          autoScalingGroup: Type.Optional(Type.String({ minLength: 1, maxLength: 255 })),
          syncIntervalMs: Type.Integer({ minimum: 1000, maximum: 3_600_000, default: 30_000 }),
          /** Rotate the cluster key once it is this old (at least a minute); absent: never. */
          rotateAfterMs: Type.Optional(Type.Integer({ minimum: 60_000, maximum: 366 * 86_400_000 })),
        },
        closed,
      ),
    ),
    /** Simulation only: the parent forwards the enclave's KMS connections (vsock-proxy in production). */
    kmsForwarder: Type.Optional(
      Type.Object({ listen: Address, target: Type.String({ pattern: '^[A-Za-z0-9.-]+:\\d{1,5}$' }) }, closed),
    ),
    logLevel: LogLevel,
  },
  closed,
);
export type ParentConfig = Static<typeof ParentConfigSchema>;

/**
 * Validates `file` (already parsed from JSON or YAML; `{}` when there is none) with `env`
 * overriding it, applies defaults, and returns a deep-frozen copy. Throws one
 * {@link ConfigError} listing every wrong field.
 */
export function resolveConfig<S extends TSchema>(
  schema: S,
  file: unknown,
  env: Readonly<Record<string, string | undefined>>,
  where = 'configuration',
): Static<S> {
  if (typeof file !== 'object' || file === null || Array.isArray(file)) {
    throw new ConfigError('ERR_CONFIG_INVALID', `${where}: the top level must be a mapping of fields`);
  }
  const merged = structuredClone(file) as Record<string, unknown>;
  const problems: string[] = [];
  problems.push(...unknownEnvironmentVariables(env));
  applyEnvironment(schema, merged, env, [], problems);
  const value = Value.Default(schema, merged);
  const errors = [...Value.Errors(schema, value)];
  // A union of literals fails once per literal and once more for the union: say it once.
  const allowed = new Map<string, unknown[]>();
  for (const error of errors) {
    if (error.keyword === 'const') {
      const list = allowed.get(error.instancePath) ?? [];
      list.push((error.params as { allowedValue?: unknown }).allowedValue);
      allowed.set(error.instancePath, list);
    }
  }
  for (const error of errors) {
    const values = allowed.get(error.instancePath);
    if (values === undefined) problems.push(describeError(error));
    else if (error.keyword === 'anyOf')
      problems.push(
        `${fieldName(error.instancePath)}: must be one of ${values.map((v) => JSON.stringify(v)).join(', ')}`,
      );
  }
  if (problems.length > 0) {
    throw new ConfigError(
      'ERR_CONFIG_INVALID',
      `${where} is invalid:\n  - ${[...new Set(problems)].join('\n  - ')}`,
    );
  }
  return deepFreeze(value) as Static<S>;
}

/** Environment variables for every leaf of `schema`, for `--help` texts and docs. */
export function environmentVariables(schema: TSchema, path: string[] = []): string[] {
  const properties = (schema as { properties?: Record<string, TSchema> }).properties;
  if (properties === undefined) return [envName(path)];
  return Object.entries(properties).flatMap(([key, child]) => environmentVariables(child, [...path, key]));
}

function applyEnvironment(
  schema: TSchema,
  target: Record<string, unknown>,
  env: Readonly<Record<string, string | undefined>>,
  path: string[],
  problems: string[],
): void {
  const properties = (schema as { properties?: Record<string, TSchema> }).properties ?? {};
  for (const [key, child] of Object.entries(properties)) {
    const childPath = [...path, key];
    if ((child as { properties?: unknown }).properties !== undefined) {
      const existing = target[key];
      const nested =
        typeof existing === 'object' && existing !== null ? (existing as Record<string, unknown>) : {};
      const before = JSON.stringify(nested);
      applyEnvironment(child, nested, env, childPath, problems);
      if (existing !== undefined || JSON.stringify(nested) !== before) target[key] = nested;
      continue;
    }
    const name = envName(childPath);
    const raw = env[name];
    if (raw === undefined) continue;
    const type = (child as { type?: string }).type;
    if (type === 'integer' || type === 'number') {
      // Exactly the digits: " 80 " or "8e1" is a typo to report, not a number to guess at.
      if (!/^-?\d+(\.\d+)?$/.test(raw)) problems.push(`${name}: ${JSON.stringify(raw)} is not a number`);
      else target[key] = Number(raw);
    } else if (type === 'boolean') {
      if (raw !== 'true' && raw !== 'false') problems.push(`${name}: must be true or false`);
      else target[key] = raw === 'true';
    } else if (type === 'array') {
      target[key] = raw
        .split(',')
        .map((item) => item.trim())
        .filter((item) => item.length > 0);
    } else {
      target[key] = raw;
    }
  }
}

/**
 * `NITRO_INFER_*` variables that are not configuration leaves but are read elsewhere: the CLI's
 * endpoint and admin token, the deploy script's config folder, the VM tests' cache, console file and build jobs, and the
 * worker's test-only crash and delay hooks (enclave/inference/worker.ts; inert unless set, and the enclave's
 * environment is part of its measured image).
 */
export const OTHER_ENVIRONMENT_VARIABLES: readonly string[] = [
  'NITRO_INFER_ENDPOINT',
  'NITRO_INFER_ADMIN_TOKEN',
  'NITRO_INFER_ETC',
  'NITRO_INFER_VM_CACHE',
  'NITRO_INFER_VM_CONSOLE',
  'NITRO_INFER_VM_JOBS',
  'NITRO_INFER_TEST_WORKER_EXIT_ON_MODEL',
  // bin/nitro-infer.js: run the TypeScript sources (tsx) even when dist/ is current (the tests).
  'NITRO_INFER_FROM_SOURCE',
  'NITRO_INFER_TEST_WORKER_DELAY_ON_MODEL',
];

/**
 * A misspelt override (`NITRO_INFER_HTTP_PROT`) would otherwise be silently ignored and the
 * default used: every `NITRO_INFER_*` variable must be one of the enclave's or the parent's
 * configuration leaves (both, since the local stack gives both sides one environment) or one of
 * {@link OTHER_ENVIRONMENT_VARIABLES}. The closest known name is suggested.
 */
function unknownEnvironmentVariables(env: Readonly<Record<string, string | undefined>>): string[] {
  const known = new Set([
    ...environmentVariables(EnclaveConfigSchema),
    ...environmentVariables(ParentConfigSchema),
    ...OTHER_ENVIRONMENT_VARIABLES,
  ]);
  return Object.keys(env)
    .filter((name) => name.startsWith(ENV_PREFIX) && env[name] !== undefined && !known.has(name))
    .sort()
    .map((name) => {
      const closest = closestName(name, known);
      return `unknown environment variable ${name}${closest === undefined ? '' : ` (did you mean ${closest}?)`}`;
    });
}

function closestName(name: string, known: ReadonlySet<string>): string | undefined {
  let best: string | undefined;
  let bestDistance = Math.max(3, Math.floor(name.length / 4)) + 1;
  for (const candidate of known) {
    const distance = editDistance(name, candidate);
    if (distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  return best;
}

/** Levenshtein distance, one row at a time. */
function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, index) => index);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      const substitution = (previous[j - 1] as number) + (a[i - 1] === b[j - 1] ? 0 : 1);
      current.push(Math.min((previous[j] as number) + 1, (current[j - 1] as number) + 1, substitution));
    }
    previous = current;
  }
  return previous[b.length] as number;
}

function envName(path: readonly string[]): string {
  return (
    ENV_PREFIX + path.map((part) => part.replace(/[A-Z]/g, (letter) => `_${letter}`).toUpperCase()).join('_')
  );
}

function describeError(error: {
  instancePath: string;
  message: string;
  keyword: string;
  params: unknown;
}): string {
  const field = fieldName(error.instancePath);
  const params = error.params as { additionalProperties?: string[]; requiredProperties?: string[] };
  if (error.keyword === 'additionalProperties' && params.additionalProperties !== undefined) {
    const prefix = error.instancePath === '' ? '' : `${field}.`;
    return `unknown field ${params.additionalProperties.map((name) => prefix + name).join(', ')}`;
  }
  if (error.keyword === 'required' && params.requiredProperties !== undefined) {
    const prefix = error.instancePath === '' ? '' : `${field}.`;
    return `missing field ${params.requiredProperties.map((name) => prefix + name).join(', ')}`;
  }
  if (error.keyword === 'boolean') return `unknown field ${field}`;
  return `${field}: ${error.message}`;
}

function fieldName(instancePath: string): string {
  return instancePath === '' ? '(top level)' : instancePath.slice(1).replaceAll('/', '.');
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null) {
    for (const entry of Object.values(value)) deepFreeze(entry);
    Object.freeze(value);
  }
  return value;
}
