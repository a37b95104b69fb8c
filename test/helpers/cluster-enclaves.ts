/**
 * In-process enclave services for the cluster key exchange tests: each with its own simulated NSM
 * (sharing one simulated Nitro PKI, as the instances of one AWS region share AWS's root), served on
 * a Unix socket by the real link server, reached by the test as a parent — or an attacker on the
 * parent — would, over a raw link connection. One shared, adjustable clock drives the NSMs and the
 * services, so expiry is tested without waiting.
 */
import { cp, mkdir, appendFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { LinkServer } from '../../enclave/server/link-server.ts';
import { startEnclaveService } from '../../enclave/service.ts';
import type { EnclaveService } from '../../enclave/service.ts';
import { createSimulatedEnclaveIdentity, ENCLAVE_CODE_BUNDLE, PROJECT_ROOT } from '../../sim/index.ts';
import type { SimulatedEnclaveIdentity, SimulatedNitroPki } from '../../sim/index.ts';
import { TestLinkClient } from './link-client.ts';

/** The tests' clock: real time plus a skew they may advance. */
export const testClock = { skewMs: 0, now: () => Date.now() + testClock.skewMs };

export interface TestEnclave {
  readonly identity: SimulatedEnclaveIdentity;
  readonly service: EnclaveService;
  readonly socketPath: string;
  readonly log: string[];
  connect(): Promise<TestLinkClient>;
  close(): Promise<void>;
}

/**
 * A copy of the enclave code bundle with one comment line added to one file: the simulated
 * measurement gives it another PCR0 (and PCR2), as a modified image would on hardware.
 */
export async function modifiedProjectRoot(directory: string): Promise<string> {
  const root = path.join(directory, 'modified-image');
  await mkdir(root, { recursive: true });
  for (const entry of ENCLAVE_CODE_BUNDLE) {
    await cp(path.join(PROJECT_ROOT, entry), path.join(root, entry), { recursive: true });
  }
  await appendFile(path.join(root, 'enclave', 'service.ts'), '\n// a modified image\n');
  return root;
}

export async function startTestEnclave(
  directory: string,
  name: string,
  pki: SimulatedNitroPki | undefined,
  projectRoot?: string,
): Promise<TestEnclave> {
  const identity = await createSimulatedEnclaveIdentity({
    ...(pki === undefined ? {} : { pki }),
    ...(projectRoot === undefined ? {} : { projectRoot }),
    clock: testClock.now,
  });
  const log: string[] = [];
  const sink = (level: string, event: string, details?: Readonly<Record<string, unknown>>) =>
    log.push(JSON.stringify({ level, event, ...details }));
  const service = await startEnclaveService({
    nsm: identity.nsm,
    attestationRoots: [identity.pki.rootCertificate],
    kms: {
      region: 'eu-west-1',
      openTransport: () => {
        throw new Error('these tests make no KMS call from the enclave');
      },
    },
    memoryBudgetBytes: 16 * 1024 * 1024,
    inferenceWorkers: 1,
    clock: testClock.now,
    log: sink,
  });
  const linkServer = new LinkServer(service.handlers, sink);
  const socketPath = path.join(directory, `${name}.sock`);
  const server = net.createServer((socket) => linkServer.accept(socket));
  await new Promise<void>((resolve) => server.listen(socketPath, resolve));
  return {
    identity,
    service,
    socketPath,
    log,
    connect: () => TestLinkClient.connect(socketPath),
    close: async () => {
      linkServer.close();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await service.close();
    },
  };
}
