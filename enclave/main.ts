/**
 * Starts the enclave side from its configuration: chooses the NSM (the device, or one a
 * simulation passes in), the transports (vsock in production, Unix sockets in simulation) and the
 * KMS endpoint, then serves the link. The only place in enclave/ where concrete seams are chosen.
 */
import { readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import type { Server } from 'node:net';
import { AWS_NITRO_ROOT_G1_DER } from '../shared/attestation/index.ts';
import type { EnclaveConfig } from '../shared/config.ts';
import { ConfigError } from '../shared/errors.ts';
import { formatTransportAddress, parseTransportAddress } from '../shared/transport-address.ts';
import { checkVsockSupport, connectTransport, listenTransport, openStreamSync } from '../transport/index.ts';
import { DeviceNsm } from './nsm/device-nsm.ts';
import type { Nsm } from './nsm/index.ts';
import { LinkServer } from './server/link-server.ts';
import type { Log } from './server/link-server.ts';
import { EnclaveTelemetry } from './server/telemetry.ts';
import { startEnclaveService } from './service.ts';
import type { EnclaveService } from './service.ts';

/** Seams a simulation supplies; production leaves them out. */
export interface EnclaveSeams {
  /** A simulated NSM and the root its documents chain to. */
  readonly simulated?: { readonly nsm: Nsm; readonly attestationRoots: readonly Uint8Array[] };
  readonly log?: Log;
}

/** A running enclave. */
export interface EnclaveRuntime {
  readonly service: EnclaveService;
  readonly address: string;
  /**
   * The SIGTERM path: stops taking new requests (ERR_LINK_DRAINING; `status` says not ready) and
   * resolves once those in flight are answered, or after `link.drainTimeoutMs`. Then call close().
   */
  drain(): Promise<void>;
  close(): Promise<void>;
}

/** pino's numeric levels, so the enclave's lines and the parent's records share one schema. */
export const PINO_LEVELS = { debug: 20, info: 30, warn: 40, error: 50 } as const;

/**
 * JSON log lines on stdout, shaped like the parent's pino records (`level` as pino's number,
 * `time` in epoch milliseconds, `pid`, `hostname`, the fields, `event` and `msg`). Stdout is
 * readable only from a debug-mode console on Nitro; the operator events also reach the parent
 * through telemetry (server/telemetry.ts).
 */
export function jsonLog(
  level: EnclaveConfig['logLevel'],
  write = (line: string) => process.stdout.write(line),
): Log {
  const threshold = PINO_LEVELS[level];
  const hostname = os.hostname();
  return (lineLevel, event, details) => {
    if (PINO_LEVELS[lineLevel] < threshold) return;
    write(
      `${JSON.stringify({ level: PINO_LEVELS[lineLevel], time: Date.now(), pid: process.pid, hostname, ...details, event, msg: event })}\n`,
    );
  };
}

export async function startEnclave(config: EnclaveConfig, seams: EnclaveSeams = {}): Promise<EnclaveRuntime> {
  // One ring for the service's and the link server's events (handler failures, refused frames).
  const telemetry = new EnclaveTelemetry();
  const log = telemetry.tee(seams.log ?? jsonLog(config.logLevel));
  const listen = parseTransportAddress(config.listen);
  const proxy = parseTransportAddress(config.kms.proxy);
  if (listen.kind === 'vsock' || proxy.kind === 'vsock') checkVsockSupport();

  let nsm: Nsm;
  let roots: readonly Uint8Array[];
  if (config.nsm === 'simulated') {
    if (seams.simulated === undefined) {
      throw new ConfigError(
        'ERR_CONFIG_INVALID',
        'nsm: "simulated" needs the simulation launcher (nitro-infer enclave with simulation.pkiFile)',
      );
    }
    ({ nsm, attestationRoots: roots } = seams.simulated);
  } else {
    nsm = DeviceNsm.open();
    roots = [AWS_NITRO_ROOT_G1_DER];
  }

  const extraCa = config.kms.caFile === undefined ? undefined : [await readFile(config.kms.caFile, 'utf8')];
  const service = await startEnclaveService({
    nsm,
    attestationRoots: roots,
    kms: {
      region: config.kms.region,
      openTransport: proxy.kind === 'vsock' ? () => connectTransport(proxy) : () => openStreamSync(proxy),
      ...(extraCa === undefined ? {} : { extraCaCertificates: extraCa }),
      ...(config.kms.allowedKeyArns === undefined ? {} : { allowedKeyArns: config.kms.allowedKeyArns }),
    },
    memoryBudgetBytes: config.memoryBudgetMib * 1024 * 1024,
    replay: { windowMs: config.replay.windowSeconds * 1000, cacheEntries: config.replay.cacheEntries },
    inferenceWorkers:
      config.inferenceWorkers === 0 ? Math.max(1, os.availableParallelism()) : config.inferenceWorkers,
    log,
    telemetry,
  });
  const linkServer = new LinkServer(service.handlers, log, {
    maxConnections: config.link.maxConnections,
    maxBufferedBytes: config.link.maxBufferedMib * 1024 * 1024,
    incompleteFrameTimeoutMs: config.link.incompleteFrameTimeoutMs,
  });
  // A socket file left by a previous run would make bind fail; the directory is ours.
  if (listen.kind === 'unix') await rm(listen.path, { force: true });
  let server: Server;
  try {
    server = await listenTransport(listen, (socket) => linkServer.accept(socket));
  } catch (error) {
    await service.close();
    throw error;
  }
  const address = formatTransportAddress(listen);
  log('info', 'enclave.listening', { address });
  let drained: Promise<void> | undefined;
  const drain = async () => {
    service.beginDrain();
    linkServer.drain();
    log('info', 'enclave.draining', { inFlight: linkServer.working });
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(true), config.link.drainTimeoutMs);
    });
    const expired = await Promise.race([linkServer.idle().then(() => false), timedOut]);
    clearTimeout(timer);
    log(expired ? 'warn' : 'info', 'enclave.drained', { inFlight: linkServer.working });
    await linkServer.end();
  };
  return {
    service,
    address,
    drain: () => (drained ??= drain()),
    close: async () => {
      linkServer.close();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await service.close();
    },
  };
}
