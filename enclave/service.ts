/**
 * The enclave service: keys, NSM, attested KMS, model manager and inference pool, exposed as link
 * handlers — one module per link message in `handlers/`. The same code runs on hardware and in
 * simulation; only the NSM, the transport and the AWS endpoints differ, and they are passed in.
 */
import { verifyAttestation } from '../shared/attestation/index.ts';
import { encodeUserData } from '../shared/binding.ts';
import { InferenceGateway } from './gateway/inference-gateway.ts';
import type { OhttpKeys } from './gateway/ohttp-keys.ts';
import { ReplayWindow } from './gateway/replay-window.ts';
import { ClusterKeyring } from './cluster/cluster-keyring.ts';
import { ClusterExchange } from './cluster/peer-exchange.ts';
import { attestHandler } from './handlers/attest.ts';
import { credentialsHandler } from './handlers/credentials.ts';
import { plaintextInferHandler } from './handlers/infer.ts';
import { modelAbortHandler } from './handlers/model-abort.ts';
import { modelChunkHandler } from './handlers/model-chunk.ts';
import { modelEndHandler } from './handlers/model-end.ts';
import { modelLoadHandler } from './handlers/model-load.ts';
import { modelUnloadHandler } from './handlers/model-unload.ts';
import { modelsWatchHandler } from './handlers/models-watch.ts';
import { ohttpConfigHandler } from './handlers/ohttp-config.ts';
import { clusterAcceptHandler } from './handlers/cluster-accept.ts';
import { clusterChallengeHandler } from './handlers/cluster-challenge.ts';
import { clusterRequestHandler } from './handlers/cluster-request.ts';
import { clusterRotateHandler } from './handlers/cluster-rotate.ts';
import { clusterShareHandler } from './handlers/cluster-share.ts';
import { clusterStatusHandler } from './handlers/cluster-status.ts';
import { ohttpHandler } from './handlers/ohttp.ts';
import { statusHandler } from './handlers/status.ts';
import { telemetryPollHandler } from './handlers/telemetry-poll.ts';
import { loggingLoadFailures } from './handlers/load-failures.ts';
import { Uploads } from './handlers/uploads.ts';
import { InferencePool } from './inference/pool.ts';
import { AttestedKms } from './kms/attested-kms.ts';
import { CredentialStore } from './kms/credentials.ts';
import { createKmsClient } from './kms/kms-client.ts';
import type { OpenTransport } from './kms/kms-client.ts';
import { generateEnclaveKeys } from './keys.ts';
import type { EnclaveKeys } from './keys.ts';
import { MemoryBudget } from './models/memory-budget.ts';
import { ModelManager } from './models/model-manager.ts';
import type { Nsm } from './nsm/index.ts';
import type { LinkHandler, Log } from './server/link-server.ts';
import { EnclaveTelemetry } from './server/telemetry.ts';

export { MAX_NONCE_BYTES, MIN_NONCE_BYTES } from './handlers/attest.ts';
export { MAX_INFERENCE_BODY_BYTES } from './handlers/infer.ts';
export { MAX_MODEL_CHUNK_BYTES } from './handlers/model-chunk.ts';

/** What the service needs from outside. */
export interface EnclaveServiceOptions {
  readonly nsm: Nsm;
  /** Roots the start-up self-check verifies the NSM's first document against. */
  readonly attestationRoots: readonly Uint8Array[];
  readonly kms: {
    readonly region: string;
    readonly openTransport: OpenTransport;
    readonly extraCaCertificates?: readonly string[];
    readonly allowedKeyArns?: readonly string[];
  };
  readonly memoryBudgetBytes: number;
  readonly inferenceWorkers?: number;
  /**
   * Serve `infer` requests in plaintext over the link. Off by default: the parent must only ever
   * relay encrypted requests. For local tests and benchmarks of the engine alone.
   */
  readonly allowPlaintextInference?: boolean;
  /** Pad OHTTP responses to size buckets (default on). */
  readonly padResponses?: boolean;
  /** OHTTP anti-replay: accepted Date distance (ms) and remembered requests (replay-window.ts). */
  readonly replay?: { readonly windowMs?: number; readonly cacheEntries?: number };
  /** Milliseconds since the epoch, for the cluster exchange's nonce lifetimes and peer freshness; injectable for tests. */
  readonly clock?: () => number;
  readonly log: Log;
  /**
   * The telemetry ring `log` already feeds (main.ts tees the link server's log into it too).
   * Absent: the service makes one and tees `log` into it itself.
   */
  readonly telemetry?: EnclaveTelemetry;
}

/** A running enclave service. */
export interface EnclaveService {
  readonly handlers: ReadonlyMap<string, LinkHandler>;
  readonly keys: EnclaveKeys;
  readonly ohttpKeys: OhttpKeys;
  readonly cluster: ClusterKeyring;
  readonly models: ModelManager;
  readonly telemetry: EnclaveTelemetry;
  /** Marks the service draining: `status` reports not ready (the link server refuses new work). */
  beginDrain(): void;
  close(): Promise<void>;
}

/**
 * Starts the service: generates keys, checks that the NSM's first document verifies against the
 * pinned root (a cheap guard against a broken NSM path or clock: refuse to serve otherwise), and
 * starts the inference workers.
 */
export async function startEnclaveService(serviceOptions: EnclaveServiceOptions): Promise<EnclaveService> {
  const telemetry = serviceOptions.telemetry ?? new EnclaveTelemetry();
  const options =
    serviceOptions.telemetry === undefined
      ? { ...serviceOptions, log: telemetry.tee(serviceOptions.log) }
      : serviceOptions;
  const keys = generateEnclaveKeys();
  const selfCheck = await options.nsm.attest({ publicKey: keys.kmsRecipient.publicKeySpki });
  const self = verifyAttestation(selfCheck, {
    roots: options.attestationRoots,
    allowDebug: true,
    maxAgeMs: 60_000,
    ...(options.clock === undefined ? {} : { at: options.clock() }),
  });

  const credentials = new CredentialStore();
  const pool = new InferencePool({
    log: options.log,
    ...(options.inferenceWorkers === undefined ? {} : { size: options.inferenceWorkers }),
  });
  const budget = new MemoryBudget(options.memoryBudgetBytes);
  // The OHTTP key is a cluster key generated here: a lone enclave serves with it, and replicas
  // replace it only through the attested peer exchange (docs/protocols.md "Cluster key").
  const cluster = await ClusterKeyring.generate(options.clock);
  const ohttpKeys = cluster.ohttpKeys;
  const exchange = new ClusterExchange({
    nsm: options.nsm,
    roots: options.attestationRoots,
    self,
    keyring: cluster,
    ...(options.clock === undefined ? {} : { clock: options.clock }),
  });
  const modelIdentities = () => models.list().map((model) => model.identity);
  const userData = () =>
    encodeUserData({
      ohttpKeyConfig: ohttpKeys.keyConfig,
      receiptPublicKey: ohttpKeys.receipts.publicKeyRaw,
      models: modelIdentities(),
    });
  const kms = new AttestedKms({
    client: createKmsClient({
      region: options.kms.region,
      openTransport: options.kms.openTransport,
      credentials,
      ...(options.kms.extraCaCertificates === undefined
        ? {}
        : { extraCaCertificates: options.kms.extraCaCertificates }),
    }),
    nsm: options.nsm,
    keys,
    userData,
  });
  // `userData` above reads `models` lazily, only once requests arrive.
  const models: ModelManager = new ModelManager({
    pool,
    budget,
    decrypt: (request) => kms.decrypt(request),
    ...(options.kms.allowedKeyArns === undefined ? {} : { allowedKeyArns: options.kms.allowedKeyArns }),
  });
  const gateway = new InferenceGateway({
    keys: ohttpKeys,
    pool,
    models,
    replay: new ReplayWindow({
      ...(options.replay?.windowMs === undefined ? {} : { windowMs: options.replay.windowMs }),
      ...(options.replay?.cacheEntries === undefined ? {} : { capacity: options.replay.cacheEntries }),
    }),
    ...(options.padResponses === undefined ? {} : { padResponses: options.padResponses }),
  });
  const uploads = new Uploads();
  let draining = false;
  // OHTTP requests being handled: an aggregate the parent sees anyway (it relays each of them).
  const requests = { inFlight: 0 };
  const ohttp = ohttpHandler(gateway);
  const countedOhttp: LinkHandler = async (fields, connection) => {
    requests.inFlight++;
    try {
      return await ohttp(fields, connection);
    } finally {
      requests.inFlight--;
    }
  };

  const handlers = new Map<string, LinkHandler>([
    ['status', statusHandler(models, pool, budget, () => draining)],
    ['models.watch', modelsWatchHandler(pool)],
    ['ohttp.config', ohttpConfigHandler(ohttpKeys)],
    ['attest', attestHandler({ nsm: options.nsm, keys, ohttpKeys, models: modelIdentities, userData })],
    ['credentials', credentialsHandler(credentials)],
    ['cluster.status', clusterStatusHandler(cluster)],
    ['cluster.rotate', clusterRotateHandler(cluster, options.log)],
    ['cluster.challenge', clusterChallengeHandler(exchange)],
    ['cluster.request', clusterRequestHandler(exchange)],
    ['cluster.share', clusterShareHandler(exchange, options.log)],
    ['cluster.accept', clusterAcceptHandler(exchange, options.log)],
    ['telemetry.poll', telemetryPollHandler(telemetry, pool, budget, requests)],
    ['model.load', loggingLoadFailures('load', modelLoadHandler(models, uploads), options.log)],
    ['model.chunk', loggingLoadFailures('chunk', modelChunkHandler(uploads), options.log)],
    ['model.end', loggingLoadFailures('end', modelEndHandler(uploads, options.log), options.log)],
    ['model.abort', modelAbortHandler(uploads)],
    ['model.unload', modelUnloadHandler(models, options.log)],
    ['ohttp', countedOhttp],
  ]);
  if (options.allowPlaintextInference === true) handlers.set('infer', plaintextInferHandler(pool));

  options.log('info', 'enclave.started', {
    workers: options.inferenceWorkers ?? 0,
    plaintextInference: options.allowPlaintextInference === true,
  });
  return {
    handlers,
    keys,
    ohttpKeys,
    cluster,
    models,
    telemetry,
    beginDrain: () => {
      draining = true;
    },
    close: async () => {
      uploads.abortAll();
      await pool.close();
    },
  };
}
