/**
 * The simulation's KMS path in one call: the KMS simulator, the parent's forwarder in front of it
 * (what the enclave connects to, as it would to vsock-proxy), and an operator's KMS client that
 * trusts the simulator's CA. Used by the local stack, the tests and the benchmarks.
 */
import https from 'node:https';
import path from 'node:path';
import { KMS } from '@aws-sdk/client-kms';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import { startKmsForwarder } from '../parent/kms-forwarder.ts';
import type { KmsForwarder } from '../parent/kms-forwarder.ts';
import { KmsSimulator } from './kms/kms-simulator.ts';

/** A running local KMS path. */
export interface LocalKms {
  readonly simulator: KmsSimulator;
  readonly forwarder: KmsForwarder;
  /** Where the enclave connects for KMS (the forwarder's Unix socket). */
  readonly socketPath: string;
  /** An operator's client (sealing, key creation). */
  readonly operator: KMS;
  close(): Promise<void>;
}

/** Starts the simulator (state in `<directory>/kms`) and its forwarder (`<directory>/kms.sock`). */
export async function startLocalKms(
  directory: string,
  attestationRoots: readonly Uint8Array[],
): Promise<LocalKms> {
  const simulator = await KmsSimulator.start({
    stateDirectory: path.join(directory, 'kms'),
    attestationRoots,
  });
  const port = Number(new URL(simulator.info.endpoint).port);
  const socketPath = path.join(directory, 'kms.sock');
  const forwarder = await startKmsForwarder({
    listen: `unix:${socketPath}`,
    targetHost: '127.0.0.1',
    targetPort: port,
    allowList: [`127.0.0.1:${port}`],
  });
  const operator = new KMS({
    region: simulator.info.region,
    endpoint: simulator.info.endpoint,
    credentials: { accessKeyId: simulator.info.accessKeyId, secretAccessKey: simulator.info.secretAccessKey },
    requestHandler: new NodeHttpHandler({ httpsAgent: new https.Agent({ ca: simulator.caCertificatePem }) }),
  });
  return {
    simulator,
    forwarder,
    socketPath,
    operator,
    close: async () => {
      operator.destroy();
      await forwarder.close();
      await simulator.close();
    },
  };
}
