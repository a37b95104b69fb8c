/**
 * Starts the parent from its configuration: the enclave link, artifact stores, admin tokens,
 * credential pushes, the KMS forwarder (simulation only — production runs AWS's vsock-proxy) and
 * the HTTP app. The only place in parent/ where concrete seams are chosen.
 */
import { fromNodeProviderChain } from '@aws-sdk/credential-providers';
import type { AwsCredentialIdentityProvider } from '@aws-sdk/types';
import { pino } from 'pino';
import type { Logger } from 'pino';
import type { ParentConfig } from '../shared/config.ts';
import { ConfigError } from '../shared/errors.ts';
import { parseTransportAddress } from '../shared/transport-address.ts';
import { checkVsockSupport, connectTransport } from '../transport/index.ts';
import { AdminTokens } from './admin-tokens.ts';
import { buildParentApp } from './app.ts';
import type { ParentApp } from './app.ts';
import { parseArtifactSource } from './artifacts/artifact-source.ts';
import { FileArtifactStore } from './artifacts/file-store.ts';
import { S3ArtifactStore } from './artifacts/s3-store.ts';
import { buildPeerApp } from './cluster/peer-app.ts';
import type { PeerApp } from './cluster/peer-app.ts';
import { ClusterSync } from './cluster/cluster-sync.ts';
import { peerDiscovery } from './cluster/peer-discovery.ts';
import { CredentialPusher } from './credentials.ts';
import { startKmsForwarder } from './kms-forwarder.ts';
import type { KmsForwarder } from './kms-forwarder.ts';
import { EnclaveLink } from './link/enclave-link.ts';
import type { LinkLog } from './link/enclave-link.ts';
import { HttpDrain } from './drain.ts';
import { TelemetryPoller } from './link/telemetry-poller.ts';
import { ParentMetrics } from './metrics.ts';
import { ModelRegistry } from './model-registry.ts';

/** Seams tests and the simulation may replace. */
export interface ParentSeams {
  readonly logger?: Logger;
  /** AWS credentials for the enclave's KMS calls; the standard provider chain otherwise. */
  readonly credentials?: AwsCredentialIdentityProvider;
  /** Peer parents' cluster listeners, instead of `cluster.peers` and discovery (tests, the local stack). */
  readonly clusterPeers?: () => Promise<readonly string[]>;
}

/** A running parent. */
export interface ParentRuntime {
  readonly app: ParentApp;
  readonly link: EnclaveLink;
  readonly models: ModelRegistry;
  /** `http://host:port` it listens on. */
  readonly url: string;
  /** The cluster listener's `http://host:port`, when `cluster` is configured. */
  readonly clusterUrl?: string;
  readonly clusterSync?: ClusterSync;
  /**
   * The SIGTERM path: readiness and every new request answer 503 ERR_HTTP_DRAINING, requests in
   * flight run to their end (at most `http.drainTimeoutMs`). Then call close().
   */
  drain(): Promise<void>;
  close(): Promise<void>;
}

/** Logger settings: bodies are never logged (Fastify logs method, URL and status only), and the
 * Authorization header is redacted should a serializer ever include headers. */
export function parentLogger(level: ParentConfig['logLevel'], destination?: NodeJS.WritableStream): Logger {
  return pino(
    {
      level,
      redact: {
        paths: ['req.headers.authorization', 'headers.authorization', '*.secretAccessKey', '*.sessionToken'],
        censor: '[redacted]',
      },
    },
    destination as never,
  );
}

export async function startParent(config: ParentConfig, seams: ParentSeams = {}): Promise<ParentRuntime> {
  const production = config.mode === 'production';
  // Fail at start-up, with the fallback named, rather than on the first reconnect.
  if (parseTransportAddress(config.enclave.address).kind === 'vsock') checkVsockSupport();
  if (production && (config.s3.accessKeyId !== undefined || config.s3.secretAccessKey !== undefined)) {
    throw new ConfigError(
      'ERR_CONFIG_INVALID',
      's3.accessKeyId/secretAccessKey are for simulation only; production uses the instance role',
    );
  }
  if (production && config.kmsForwarder !== undefined) {
    throw new ConfigError(
      'ERR_CONFIG_INVALID',
      'kmsForwarder is for simulation only; production runs AWS vsock-proxy (parent/README.md)',
    );
  }
  if ((config.s3.accessKeyId === undefined) !== (config.s3.secretAccessKey === undefined)) {
    throw new ConfigError('ERR_CONFIG_INVALID', 's3.accessKeyId and s3.secretAccessKey go together');
  }
  const tokens =
    config.admin.tokensSecretId !== undefined
      ? await AdminTokens.fromSecretsManager(
          config.admin.tokensSecretId,
          config.aws.region,
          config.aws.secretsManagerEndpoint,
        )
      : config.admin.tokensFile !== undefined
        ? await AdminTokens.fromFile(config.admin.tokensFile)
        : undefined;
  if (tokens === undefined)
    throw new ConfigError('ERR_CONFIG_INVALID', 'admin.tokensSecretId (or admin.tokensFile) is required');

  const logger = seams.logger ?? parentLogger(config.logLevel);
  const log: LinkLog = (level, event, details) => logger[level]({ event, ...details }, event);

  let forwarder: KmsForwarder | undefined;
  if (config.kmsForwarder !== undefined) {
    const [host, port] = config.kmsForwarder.target.split(':') as [string, string];
    forwarder = await startKmsForwarder({
      listen: config.kmsForwarder.listen,
      targetHost: host,
      targetPort: Number(port),
      allowList: [config.kmsForwarder.target],
    });
  }

  const link = new EnclaveLink({
    connect: () => connectTransport(config.enclave.address),
    connections: config.enclave.connections,
    requestTimeoutMs: config.enclave.requestTimeoutMs,
    maxInFlight: config.enclave.maxInFlight,
    log,
  });
  const s3 = new S3ArtifactStore({
    region: config.aws.region,
    ...(config.s3.endpoint === undefined ? {} : { endpoint: config.s3.endpoint }),
    forcePathStyle: config.s3.forcePathStyle,
    ...(config.s3.accessKeyId === undefined || config.s3.secretAccessKey === undefined
      ? {}
      : { credentials: { accessKeyId: config.s3.accessKeyId, secretAccessKey: config.s3.secretAccessKey } }),
  });
  // Hooks run in registration order after each connect: credentials first, so reloads can call KMS.
  const credentials = new CredentialPusher(seams.credentials ?? fromNodeProviderChain(), link, log);
  const fileStore = production ? undefined : new FileArtifactStore();
  // After credentials, before model reloads: a replica binds the fleet key before it serves.
  let clusterSync: ClusterSync | undefined;
  let peerApp: PeerApp | undefined;
  if (config.cluster !== undefined) {
    clusterSync = new ClusterSync({
      link,
      peers:
        seams.clusterPeers ??
        peerDiscovery({
          peers: config.cluster.peers,
          region: config.aws.region,
          port: config.cluster.listen.port,
          ...(config.cluster.autoScalingGroup === undefined
            ? {}
            : { autoScalingGroup: config.cluster.autoScalingGroup }),
        }),
      intervalMs: config.cluster.syncIntervalMs,
      ...(config.cluster.rotateAfterMs === undefined ? {} : { rotateAfterMs: config.cluster.rotateAfterMs }),
      log,
    });
    peerApp = await buildPeerApp({ link, logger });
  }
  const models = new ModelRegistry({
    link,
    stores: { s3, file: fileStore },
    log,
  });
  const metrics = new ParentMetrics();
  const drain = new HttpDrain();
  const telemetry = new TelemetryPoller({
    link,
    log,
    metrics,
    intervalMs: config.enclave.telemetryIntervalMs,
    onEnclaveDraining: (draining) => {
      drain.enclaveDraining = draining;
    },
  });
  const app = await buildParentApp({
    link,
    models,
    tokens,
    metrics,
    drain,
    logger,
    limits: {
      ohttpBodyLimitBytes: config.http.ohttpBodyLimitBytes,
      adminBodyLimitBytes: 16 * 1024,
      requestTimeoutMs: config.http.requestTimeoutMs,
      inferenceTimeoutMs: config.http.inferenceTimeoutMs,
      rateLimit: config.http.rateLimit,
    },
    parseSource: (source) =>
      parseArtifactSource(source, { requireVersion: production, allowFile: !production }),
  });
  let url: string;
  let clusterUrl: string | undefined;
  try {
    url = await app.listen({ host: config.http.host, port: config.http.port });
    clusterUrl =
      peerApp === undefined || config.cluster === undefined
        ? undefined
        : await peerApp
            .listen({ host: config.cluster.listen.host, port: config.cluster.listen.port })
            .catch((error: unknown) => {
              throw listenFailure(error, config.cluster!.listen.host, config.cluster!.listen.port);
            });
  } catch (error) {
    // Nothing may keep running after a failed start (the caller exits with the reason).
    credentials.close();
    clusterSync?.close();
    await app.close();
    await peerApp?.close();
    s3.close();
    await forwarder?.close();
    throw listenFailure(error, config.http.host, config.http.port);
  }
  link.start();
  telemetry.start();
  clusterSync?.start();
  logger.info(
    { event: 'parent.listening', url, enclave: config.enclave.address, mode: config.mode },
    'parent.listening',
  );
  let drained: Promise<void> | undefined;
  const drainRequests = async () => {
    drain.start();
    logger.info({ event: 'parent.draining', inFlight: drain.inFlight }, 'parent.draining');
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(true), config.http.drainTimeoutMs);
    });
    const expired = await Promise.race([drain.idle().then(() => false), timedOut]);
    clearTimeout(timer);
    logger[expired ? 'warn' : 'info'](
      { event: 'parent.drained', inFlight: drain.inFlight },
      'parent.drained',
    );
  };
  return {
    app,
    link,
    models,
    url,
    ...(clusterUrl === undefined ? {} : { clusterUrl }),
    ...(clusterSync === undefined ? {} : { clusterSync }),
    drain: () => (drained ??= drainRequests()),
    close: async () => {
      credentials.close();
      telemetry.close();
      clusterSync?.close();
      link.close();
      await app.close();
      await peerApp?.close();
      s3.close();
      await forwarder?.close();
    },
  };
}

/** A failed listen as an error that says which address and what to do. */
function listenFailure(error: unknown, host: string, port: number): Error {
  const code = (error as NodeJS.ErrnoException).code;
  if (code === 'EADDRINUSE') {
    return new ConfigError(
      'ERR_CONFIG_INVALID',
      `${host}:${port} is already in use; pick another port (http.port / NITRO_INFER_HTTP_PORT, or cluster.listen for the peer listener; for the local stack, --port N)`,
    );
  }
  if (code === 'EACCES' || code === 'EADDRNOTAVAIL') {
    return new ConfigError('ERR_CONFIG_INVALID', `cannot listen on ${host}:${port} (${code})`);
  }
  return error as Error;
}
