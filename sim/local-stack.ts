/**
 * The whole system on one machine (DESIGN.md 3, sim/): simulated Nitro PKI, the KMS simulator with
 * a key whose policy pins the simulated enclave's PCR0, the enclave as a child process, and the
 * parent — the same code as production, with only the three seams swapped (NSM, transport, AWS
 * endpoints). Used by `nitro-infer sim` (`npm start`), the integration and e2e tests, and `bench/`.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import https from 'node:https';
import path from 'node:path';
import { KMS } from '@aws-sdk/client-kms';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import type { Logger } from 'pino';
import { buildKeyPolicy } from '../shared/key-policy.ts';
import { resolveConfig, EnclaveConfigSchema, ParentConfigSchema } from '../shared/config.ts';
import type { ParentConfig } from '../shared/config.ts';
import { startParent } from '../parent/main.ts';
import type { ParentRuntime } from '../parent/main.ts';
import { measureEnclaveCodeBundle } from './code-measurement.ts';
import type { BootMeasurements } from './code-measurement.ts';
import { EnclaveProcess } from './enclave-process.ts';
import type { EnclaveProcessOptions } from './enclave-process.ts';
import { KmsSimulator } from './kms/kms-simulator.ts';
import { SimulatedNitroPki } from './nitro-pki.ts';
import { PROJECT_ROOT } from './simulated-enclave.ts';

/** The simulated AWS account. */
export const LOCAL_ACCOUNT = '111122223333';

/** Options of {@link startLocalStack}. */
export interface LocalStackOptions {
  /** State directory (keys, PKI, sockets, configs). Keep its path short: Unix socket paths ≤ 107 bytes. */
  readonly stateDirectory: string;
  readonly httpHost?: string;
  /** 0 picks a free port. */
  readonly httpPort?: number;
  /** A local S3 (RADOS Gateway) for s3:// sources; file:// sources work without it. */
  readonly s3?: { readonly endpoint: string; readonly accessKeyId: string; readonly secretAccessKey: string };
  /** Parent configuration overrides (limits, timeouts). */
  readonly parent?: {
    readonly http?: Partial<ParentConfig['http']>;
    readonly enclave?: Partial<ParentConfig['enclave']>;
  };
  readonly inferenceWorkers?: number;
  /** The enclave's memory budget (default 1024 MiB). */
  readonly memoryBudgetMib?: number;
  /** Extra environment of the enclave process (test hooks such as NITRO_INFER_TEST_*). */
  readonly enclaveEnv?: Readonly<Record<string, string>>;
  readonly logger?: Logger;
  readonly onEnclaveLine?: (line: string) => void;
  readonly isolateNetwork?: boolean;
  /**
   * Join a cluster: the parent opens its cluster listener on 127.0.0.1 and syncs the enclave's
   * OHTTP cluster key with the peers `peers` lists on each call (docs/protocols.md "Cluster key").
   * Absent: a single instance with the key its enclave generated.
   */
  readonly cluster?: {
    readonly peers: () => Promise<readonly string[]>;
    readonly syncIntervalMs?: number;
    readonly rotateAfterMs?: number;
  };
  /** Another replica: share this stack's PKI, KMS simulator and key instead of starting new ones. */
  readonly replicaOf?: LocalStack;
  /** Restart the enclave child when it dies (the `nitro-infer sim` supervisor); off by default. */
  readonly enclaveRestart?: EnclaveProcessOptions['restart'];
  /** Runs after the parent starts and before the enclave does (tests put a tap on the link here). */
  readonly beforeEnclave?: () => Promise<void>;
}

/** A running local stack. */
export interface LocalStack {
  readonly url: string;
  /** The parent's cluster listener, when `cluster` was given. */
  readonly clusterUrl?: string;
  readonly adminToken: string;
  readonly keyArn: string;
  readonly region: string;
  readonly pki: SimulatedNitroPki;
  readonly measurements: BootMeasurements;
  readonly kms: KmsSimulator;
  /** An operator's KMS client (sealing, key creation). */
  readonly operator: KMS;
  readonly enclave: EnclaveProcess;
  readonly parent: ParentRuntime;
  readonly files: {
    readonly root: string;
    readonly pcrs: string;
    readonly pki: string;
    readonly adminTokens: string;
  };
  close(): Promise<void>;
}

/** The simulator's one caller (parent role, sealer and administrator at once). */
export const LOCAL_PRINCIPAL = `arn:aws:iam::${LOCAL_ACCOUNT}:role/nitro-infer-simulation`;

/** The key policy `nitro-infer policy` would print for this build, for the simulator to enforce. */
export function localKeyPolicy(measurements: BootMeasurements): string {
  const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString('hex');
  return JSON.stringify(
    buildKeyPolicy({
      pcrs: new Map([
        [0, hex(measurements.pcr0)],
        [1, hex(measurements.pcr1)],
        [2, hex(measurements.pcr2)],
      ]),
      keyAdministrators: [LOCAL_PRINCIPAL],
      enclaveRole: LOCAL_PRINCIPAL,
      sealerRole: LOCAL_PRINCIPAL,
    }),
  );
}

export async function startLocalStack(options: LocalStackOptions): Promise<LocalStack> {
  const state = path.resolve(options.stateDirectory);
  await mkdir(state, { recursive: true, mode: 0o700 });
  const files = {
    pki: path.join(state, 'pki.json'),
    root: path.join(state, 'nitro-root.pem'),
    pcrs: path.join(state, 'pcrs.json'),
    adminTokens: path.join(state, 'admin-tokens.json'),
    enclaveConfig: path.join(state, 'enclave.json'),
    parentConfig: path.join(state, 'parent.json'),
  };
  const shared = options.replicaOf;
  const pki = shared?.pki ?? (await SimulatedNitroPki.openOrCreate(files.pki));
  if (shared !== undefined) await writeFile(files.pki, JSON.stringify(pki.toJSON()), { mode: 0o600 });
  const measurements = await measureEnclaveCodeBundle(PROJECT_ROOT);
  const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString('hex');
  await writeFile(files.root, pki.rootCertificatePem);
  // nitro-cli's describe-eif / build-enclave "Measurements" shape, so the same file feeds clients and policies.
  await writeFile(
    files.pcrs,
    `${JSON.stringify({ Measurements: { HashAlgorithm: 'Sha384 { ... }', PCR0: hex(measurements.pcr0), PCR1: hex(measurements.pcr1), PCR2: hex(measurements.pcr2) } }, null, 2)}\n`,
  );

  const kms =
    shared?.kms ??
    (await KmsSimulator.start({
      stateDirectory: path.join(state, 'kms'),
      attestationRoots: [pki.rootCertificate],
      account: LOCAL_ACCOUNT,
      principalArn: LOCAL_PRINCIPAL,
    }));
  const region = kms.info.region;
  const operator: KMS = new KMS({
    region,
    endpoint: kms.info.endpoint,
    credentials: { accessKeyId: kms.info.accessKeyId, secretAccessKey: kms.info.secretAccessKey },
    requestHandler: new NodeHttpHandler({ httpsAgent: new https.Agent({ ca: kms.caCertificatePem }) }),
  });
  const keyArn =
    shared?.keyArn ??
    (
      await operator.createKey({
        Policy: localKeyPolicy(measurements),
        Description: 'nitro-infer local stack',
      })
    ).KeyMetadata!.Arn!;

  let adminToken: string;
  try {
    adminToken = (JSON.parse(await readFile(files.adminTokens, 'utf8')) as { tokens: string[] }).tokens[0]!;
  } catch {
    adminToken = randomBytes(24).toString('base64url');
    await writeFile(files.adminTokens, JSON.stringify({ tokens: [adminToken] }), { mode: 0o600 });
  }

  const enclaveSocket = path.join(state, 'enclave.sock');
  const kmsSocket = path.join(state, 'kms.sock');
  const enclaveConfig = resolveConfig(
    EnclaveConfigSchema,
    {
      listen: `unix:${enclaveSocket}`,
      nsm: 'simulated',
      simulation: { pkiFile: files.pki },
      kms: { region, proxy: `unix:${kmsSocket}`, caFile: kms.info.caCertPath },
      memoryBudgetMib: options.memoryBudgetMib ?? 1024,
      inferenceWorkers: options.inferenceWorkers ?? 2,
    },
    {},
  );
  await writeFile(files.enclaveConfig, JSON.stringify(enclaveConfig, null, 2));
  const parentConfig = resolveConfig(
    ParentConfigSchema,
    {
      mode: 'simulation',
      http: {
        host: options.httpHost ?? '127.0.0.1',
        port: options.httpPort ?? 8080,
        ...options.parent?.http,
      },
      enclave: { address: `unix:${enclaveSocket}`, ...options.parent?.enclave },
      admin: { tokensFile: files.adminTokens },
      aws: { region },
      s3:
        options.s3 === undefined
          ? {}
          : {
              endpoint: options.s3.endpoint,
              forcePathStyle: true,
              accessKeyId: options.s3.accessKeyId,
              secretAccessKey: options.s3.secretAccessKey,
            },
      ...(options.cluster === undefined
        ? {}
        : {
            cluster: {
              listen: { host: '127.0.0.1', port: 0 },
              ...(options.cluster.syncIntervalMs === undefined
                ? {}
                : { syncIntervalMs: options.cluster.syncIntervalMs }),
              ...(options.cluster.rotateAfterMs === undefined
                ? {}
                : { rotateAfterMs: options.cluster.rotateAfterMs }),
            },
          }),
      kmsForwarder: { listen: `unix:${kmsSocket}`, target: `127.0.0.1:${new URL(kms.info.endpoint).port}` },
    },
    {},
  );
  await writeFile(files.parentConfig, JSON.stringify(parentConfig, null, 2));

  const enclave = new EnclaveProcess({
    configFile: files.enclaveConfig,
    ...(options.isolateNetwork === undefined ? {} : { isolateNetwork: options.isolateNetwork }),
    ...(options.onEnclaveLine === undefined ? {} : { onLine: options.onEnclaveLine }),
    ...(options.enclaveRestart === undefined ? {} : { restart: options.enclaveRestart }),
    ...(options.enclaveEnv === undefined ? {} : { env: options.enclaveEnv }),
  });
  let parent: ParentRuntime | undefined;
  try {
    // The parent first: its KMS forwarder must be there before the enclave's first KMS call.
    parent = await startParent(parentConfig, {
      credentials: async () => ({
        accessKeyId: kms.info.accessKeyId,
        secretAccessKey: kms.info.secretAccessKey,
      }),
      ...(options.logger === undefined ? {} : { logger: options.logger }),
      ...(options.cluster === undefined ? {} : { clusterPeers: options.cluster.peers }),
    });
    await options.beforeEnclave?.();
    await enclave.start();
    await parent.link.ready();
  } catch (error) {
    await enclave.stop();
    await parent?.close();
    operator.destroy();
    if (shared === undefined) await kms.close();
    throw error;
  }
  const running = parent;
  return {
    url: running.url,
    ...(running.clusterUrl === undefined ? {} : { clusterUrl: running.clusterUrl }),
    adminToken,
    keyArn,
    region,
    pki,
    measurements,
    kms,
    operator,
    enclave,
    parent: running,
    files: {
      root: files.root,
      pcrs: files.pcrs,
      pki: files.pki,
      adminTokens: files.adminTokens,
    },
    close: async () => {
      await enclave.stop();
      await running.close();
      operator.destroy();
      if (shared === undefined) await kms.close();
    },
  };
}
