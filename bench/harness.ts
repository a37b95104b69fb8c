/**
 * A local enclave stack for benchmarks, the same parts the integration tests use: simulated NSM,
 * KMS simulator behind the parent's forwarder, the enclave service on a Unix socket.
 */
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { AttestedKms } from '../enclave/kms/attested-kms.ts';
import { CredentialStore } from '../enclave/kms/credentials.ts';
import { createKmsClient } from '../enclave/kms/kms-client.ts';
import { generateEnclaveKeys } from '../enclave/keys.ts';
import { LinkServer } from '../enclave/server/link-server.ts';
import { startEnclaveService } from '../enclave/service.ts';
import type { EnclaveService } from '../enclave/service.ts';
import { createSealStream } from '../shared/sealing/index.ts';
import { createSimulatedEnclaveIdentity } from '../sim/index.ts';
import { startLocalKms } from '../sim/local-kms.ts';

export interface BenchStack {
  readonly directory: string;
  readonly socketPath: string;
  readonly service: EnclaveService;
  seal(name: string, model: Uint8Array): Promise<Uint8Array>;
  /** The enclave's attested KMS Decrypt, for measuring unsealing without the link. */
  readonly decrypt: AttestedKms['decrypt'];
  close(): Promise<void>;
}

export async function startBenchStack(options: {
  memoryBudgetBytes: number;
  workers?: number;
}): Promise<BenchStack> {
  const directory = await mkdtemp(path.join(os.tmpdir(), 'nitro-infer-bench-'));
  const enclave = await createSimulatedEnclaveIdentity();
  const localKms = await startLocalKms(directory, [enclave.pki.rootCertificate]);
  const { simulator, operator } = localKms;
  const keyArn = (await operator.createKey({})).KeyMetadata!.Arn!;
  const service = await startEnclaveService({
    nsm: enclave.nsm,
    attestationRoots: [enclave.pki.rootCertificate],
    kms: {
      region: simulator.info.region,
      openTransport: () => net.connect(localKms.socketPath),
      extraCaCertificates: [simulator.caCertificatePem],
    },
    memoryBudgetBytes: options.memoryBudgetBytes,
    ...(options.workers === undefined ? {} : { inferenceWorkers: options.workers }),
    allowPlaintextInference: true,
    log: () => {},
  });
  await service.handlers.get('credentials')!(
    new Map([
      ['accessKeyId', simulator.info.accessKeyId],
      ['secretAccessKey', simulator.info.secretAccessKey],
    ]),
    { id: 0, onClose: () => {} },
  );
  const linkServer = new LinkServer(service.handlers, () => {});
  const socketPath = path.join(directory, 'enclave.sock');
  const server = net.createServer((socket) => linkServer.accept(socket));
  await new Promise<void>((resolve) => server.listen(socketPath, resolve));
  const credentials = new CredentialStore();
  credentials.set({
    accessKeyId: simulator.info.accessKeyId,
    secretAccessKey: simulator.info.secretAccessKey,
  });
  const attested = new AttestedKms({
    client: createKmsClient({
      region: simulator.info.region,
      openTransport: () => net.connect(localKms.socketPath),
      credentials,
      extraCaCertificates: [simulator.caCertificatePem],
    }),
    nsm: enclave.nsm,
    keys: generateEnclaveKeys(),
    userData: () => new Uint8Array([0xa0]),
  });
  return {
    directory,
    socketPath,
    service,
    decrypt: (request) => attested.decrypt(request),
    seal: async (name, model) => {
      const stream = createSealStream({
        kms: operator,
        keyArn,
        model: { name, sha384: createHash('sha384').update(model).digest('hex') },
        plaintextLength: model.byteLength,
      });
      Readable.from([model]).pipe(stream);
      return new Uint8Array(await buffer(stream));
    },
    close: async () => {
      linkServer.close();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await service.close();
      await localKms.close();
      await rm(directory, { recursive: true, force: true });
    },
  };
}
