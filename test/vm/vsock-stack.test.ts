/**
 * The transport seam on a real kernel (issue 14, build item 3; DESIGN.md 4.5, 4.6 and 5): one TCG
 * guest runs the parent and the simulation launcher's enclave, bundled with the production entry's
 * esbuild settings, so the vsock code under test is the shipped code. The enclave listens on
 * `vsock:any:5000` and the parent's link connects to it over real AF_VSOCK loopback (CID 1); the
 * enclave, in a network namespace of its own, reaches KMS only through the parent's forwarder on
 * `vsock:any:8000`, which pipes to the KMS simulator on the host through QEMU's user-mode network.
 * From the host, the SDK attests and infers through QEMU's port forward. Killing the enclave in
 * the guest gives the parent's typed 503, and a restarted enclave is reconnected and serves again.
 * One guest serves every step (TCG is slow).
 *
 * The production entry refuses a simulated NSM (ERR_CONFIG_INVALID) and QEMU's NSM documents
 * cannot be verified (enclave-guest.test.ts), hence the simulation launcher's enclave here.
 *
 * Needs the cache of test/vm/prepare.sh: without it the suite is skipped (visibly, with the
 * command) — under CI=true it fails instead.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import https from 'node:https';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { KMS } from '@aws-sdk/client-kms';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient } from '../../client/index.ts';
import type { NitroInferClient } from '../../client/index.ts';
import { EnclaveConfigSchema, ParentConfigSchema, resolveConfig } from '../../shared/config.ts';
import { createSealStream } from '../../shared/sealing/index.ts';
import { measureEnclaveCodeBundle } from '../../sim/code-measurement.ts';
import type { BootMeasurements } from '../../sim/code-measurement.ts';
import { KmsSimulator } from '../../sim/kms/kms-simulator.ts';
import { LOCAL_ACCOUNT, LOCAL_PRINCIPAL, localKeyPolicy } from '../../sim/local-stack.ts';
import { SimulatedNitroPki } from '../../sim/nitro-pki.ts';
import { denseLayerModel } from '../../sim/onnx-builder.ts';
import { codeOfAsync } from '../helpers/codes.ts';
import { PROJECT_ROOT } from '../helpers/fixtures.ts';
import { NODE_VERSION, vmPrerequisites } from './guest.ts';
import { startInteractiveGuest } from './interactive-guest.ts';
import type { InteractiveGuest } from './interactive-guest.ts';
import { GUEST_DIRECTORY, GUEST_HTTP_PORT, measuredSourceFiles, stackScript } from './vsock-stack-guest.ts';

const CI = process.env.CI === 'true';
const prerequisites = vmPrerequisites();
const missing = 'missing' in prerequisites ? prerequisites.missing : undefined;

/** TCG boots and starts two Node processes from 13 MB bundles: minutes under load, not seconds. */
const START_TIMEOUT_MS = 300_000;
const STEP_TIMEOUT_MS = 120_000;

/**
 * 16 inputs → 4 outputs with weights in eighths and inputs in quarters: every product and sum is
 * exact in float32, so the guest's ONNX Runtime (whatever kernels TCG's CPU model selects) and the
 * host's must agree bit for bit — equality, not closeness, is the check.
 */
const MODEL_NAME = 'vm-dense';
const MODEL = denseLayerModel(
  MODEL_NAME,
  Float32Array.from({ length: 16 * 4 }, (_, index) => (((index * 7) % 9) - 4) / 8),
  Float32Array.from({ length: 4 }, (_, index) => index / 4),
);
const INPUT = Array.from({ length: 16 }, (_, index) => (((index * 5) % 7) - 3) / 4);
const REQUEST = { inputs: [{ name: 'X', shape: [1, 16], datatype: 'FP32' as const, data: INPUT }] };

async function direct(): Promise<number[]> {
  const session = await ort.InferenceSession.create(MODEL);
  const outputs = await session.run({ X: new ort.Tensor('float32', Float32Array.from(INPUT), [1, 16]) });
  await session.release();
  return [...((Object.values(outputs)[0] as ort.Tensor).data as Float32Array)];
}

/** A loopback port nobody listens on now (QEMU binds it for the forward). */
async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** A TCP relay in front of the KMS simulator that counts connections: the guest's KMS traffic. */
async function countingRelay(targetPort: number) {
  const sockets = new Set<net.Socket>();
  let connections = 0;
  const server = net.createServer((inbound) => {
    connections++;
    const outbound = net.connect(targetPort, '127.0.0.1');
    for (const socket of [inbound, outbound]) {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
      socket.on('error', () => [inbound, outbound].forEach((each) => each.destroy()));
    }
    inbound.pipe(outbound).pipe(inbound);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    get connections() {
      return connections;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

/** Parses the JSON after a guest line's prefix (`NITRO_VM parent {…}`). */
const jsonOf = (line: string) => JSON.parse(line.slice(line.indexOf('{'))) as Record<string, unknown>;

describe.skipIf(missing !== undefined && !CI)(
  `parent and simulated enclave over real AF_VSOCK in a Debian 6.12 guest, driven from the host${missing === undefined ? '' : ` (missing: ${missing})`}`,
  () => {
    let directory = '';
    let kms: KmsSimulator | undefined;
    let operator: KMS | undefined;
    let relay: Awaited<ReturnType<typeof countingRelay>> | undefined;
    let guest: InteractiveGuest | undefined;
    let pki: SimulatedNitroPki;
    let measurements: BootMeasurements;
    let url = '';
    let client: NitroInferClient;
    const adminToken = randomBytes(24).toString('base64url');
    const sha384 = createHash('sha384').update(MODEL).digest('hex');
    const started = Date.now();

    const running = () => {
      if (guest === undefined) throw new Error('the guest did not start');
      return guest;
    };
    const policy = () => ({
      pcrs: new Map([
        [0, measurements.pcr0],
        [1, measurements.pcr1],
        [2, measurements.pcr2],
      ]),
      roots: [pki.rootCertificate],
    });
    const load = () =>
      fetch(`${url}/admin/models/${MODEL_NAME}`, {
        method: 'PUT',
        headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' },
        body: JSON.stringify({ source: `file://${GUEST_DIRECTORY}/${MODEL_NAME}.sealed` }),
      });

    beforeAll(async () => {
      if (missing !== undefined) throw new Error(`VM prerequisites missing under CI=true: ${missing}`);
      directory = await mkdtemp(path.join(os.tmpdir(), 'ni-vm-stack-'));
      pki = SimulatedNitroPki.create();
      // The guest's enclave measures the same sources under the image's Node version.
      measurements = await measureEnclaveCodeBundle(PROJECT_ROOT, `node v${NODE_VERSION}`);
      kms = await KmsSimulator.start({
        stateDirectory: path.join(directory, 'kms'),
        attestationRoots: [pki.rootCertificate],
        account: LOCAL_ACCOUNT,
        principalArn: LOCAL_PRINCIPAL,
      });
      const credentials = { accessKeyId: kms.info.accessKeyId, secretAccessKey: kms.info.secretAccessKey };
      operator = new KMS({
        region: kms.info.region,
        endpoint: kms.info.endpoint,
        credentials,
        requestHandler: new NodeHttpHandler({ httpsAgent: new https.Agent({ ca: kms.caCertificatePem }) }),
      });
      const key = await operator.createKey({ Policy: localKeyPolicy(measurements) });
      const sealer = createSealStream({
        kms: operator,
        keyArn: key.KeyMetadata!.Arn!,
        model: { name: MODEL_NAME, sha384 },
      });
      Readable.from([MODEL]).pipe(sealer);
      const write = async (name: string, content: string | Uint8Array) => {
        await writeFile(path.join(directory, name), content);
        return path.join(directory, name);
      };
      relay = await countingRelay(Number(new URL(kms.info.endpoint).port));
      const region = kms.info.region;
      const enclaveConfig = resolveConfig(
        EnclaveConfigSchema,
        {
          listen: 'vsock:any:5000',
          nsm: 'simulated',
          simulation: { pkiFile: `${GUEST_DIRECTORY}/pki.json`, projectRoot: `${GUEST_DIRECTORY}/src` },
          kms: { region, proxy: 'vsock:1:8000', caFile: `${GUEST_DIRECTORY}/kms-ca.pem` },
          memoryBudgetMib: 256,
          inferenceWorkers: 1,
        },
        {},
      );
      const parentConfig = resolveConfig(
        ParentConfigSchema,
        {
          mode: 'simulation',
          http: { host: '0.0.0.0', port: GUEST_HTTP_PORT },
          enclave: { address: 'vsock:1:5000' },
          admin: { tokensFile: `${GUEST_DIRECTORY}/admin-tokens.json` },
          aws: { region },
          // 10.0.2.2 is QEMU's user-mode gateway: the host's 127.0.0.1.
          kmsForwarder: { listen: 'vsock:any:8000', target: `10.0.2.2:${relay.port}` },
        },
        {},
      );
      const files = {
        ...measuredSourceFiles(),
        [`${GUEST_DIRECTORY}/pki.json`]: await write('pki.json', JSON.stringify(pki.toJSON())),
        [`${GUEST_DIRECTORY}/kms-ca.pem`]: kms.info.caCertPath,
        [`${GUEST_DIRECTORY}/admin-tokens.json`]: await write(
          'admin-tokens.json',
          JSON.stringify({ tokens: [adminToken] }),
        ),
        [`${GUEST_DIRECTORY}/enclave.json`]: await write('enclave.json', JSON.stringify(enclaveConfig)),
        [`${GUEST_DIRECTORY}/parent.json`]: await write('parent.json', JSON.stringify(parentConfig)),
        [`${GUEST_DIRECTORY}/${MODEL_NAME}.sealed`]: await write('model.sealed', await buffer(sealer)),
      };
      const httpPort = await freePort();
      url = `http://127.0.0.1:${httpPort}`;
      guest = await startInteractiveGuest({
        // The parent's AWS credentials for the enclave's KMS calls: the standard provider chain's
        // environment variables, as on an instance without a role.
        script: stackScript({
          AWS_ACCESS_KEY_ID: credentials.accessKeyId,
          AWS_SECRET_ACCESS_KEY: credentials.secretAccessKey,
        }),
        extraEntries: { cli: 'scripts/main.ts' },
        files,
        netdev: `user,hostfwd=tcp:127.0.0.1:${httpPort}-:${GUEST_HTTP_PORT}`,
        memoryMib: 3072,
      });
      await guest.waitFor(/^NITRO_VM parent \{"ready":"parent"/, START_TIMEOUT_MS);
      await guest.waitFor(/^NITRO_VM enclave \{"ready":"enclave"/, START_TIMEOUT_MS);
      await guest.waitFor(/^NITRO_VM parent .*"event":"link\.ready"/, STEP_TIMEOUT_MS);
      client = createClient({ endpoint: url, policy: policy() });
      console.log(
        `VM stack: ${'versions' in prerequisites ? prerequisites.versions : ''}; guest serving after ${Date.now() - started} ms`,
      );
    }, START_TIMEOUT_MS + 120_000);

    afterAll(async () => {
      if (process.env.NITRO_INFER_VM_CONSOLE !== undefined && guest !== undefined)
        await writeFile(process.env.NITRO_INFER_VM_CONSOLE, guest.lines.join('\n'));
      await guest?.close();
      await relay?.close();
      operator?.destroy();
      await kms?.close();
      if (directory !== '') await rm(directory, { recursive: true, force: true });
      console.log(`VM stack: whole suite ${Date.now() - started} ms`);
    }, 60_000);

    it(
      'both sides pass the start-up vsock self-check: the enclave listens on vsock:any:5000, the parent links to CID 1',
      async () => {
        const lines = running().lines;
        expect(lines).toContain('NITRO_VM net 1');
        const enclave = jsonOf(await running().waitFor(/^NITRO_VM enclave \{"ready":"enclave"/, 0));
        expect(enclave.address).toBe('vsock:any:5000');
        const parent = jsonOf(await running().waitFor(/^NITRO_VM parent .*"event":"parent\.listening"/, 0));
        expect(parent.enclave).toBe('vsock:1:5000');
        expect(lines.filter((line) => line.includes('start_failed'))).toEqual([]);
      },
      STEP_TIMEOUT_MS,
    );

    it(
      "the operator loads the sealed model through the admin API: the enclave unseals it with KMS reached over vsock through the parent's forwarder",
      async () => {
        const from = running().lines.length;
        running().send('netns');
        const [enclaveNamespace, initNamespace] = (
          await running().waitFor(/^NITRO_VM netns /, STEP_TIMEOUT_MS, from)
        )
          .split(' ')
          .slice(2);
        expect(enclaveNamespace).toMatch(/^net:\[\d+\]$/);
        expect(initNamespace).toMatch(/^net:\[\d+\]$/);
        expect(enclaveNamespace).not.toBe(initNamespace);
        const before = relay!.connections;
        const loaded = await load();
        expect(loaded.status).toBe(200);
        expect(JSON.stringify(await loaded.json())).toContain(sha384);
        // The enclave has no network of its own: its Decrypt went enclave → vsock:1:8000 → the
        // parent's forwarder → QEMU's user network → this relay → the simulator.
        expect(relay!.connections).toBeGreaterThan(before);
      },
      STEP_TIMEOUT_MS,
    );

    it(
      'the SDK attests and infers through the port forward with outputs equal to onnxruntime-node; a client pinning another PCR0 refuses',
      async () => {
        const attestation = await client.attest();
        expect(attestation.models).toEqual([{ name: MODEL_NAME, sha384 }]);
        const result = await client.infer(MODEL_NAME, REQUEST);
        expect(result.response.outputs[0]!.data).toEqual(await direct());
        expect(result.receipt.sha384).toBe(sha384);

        const other = new Uint8Array(measurements.pcr0);
        other[0]! ^= 1;
        const wrong = createClient({ endpoint: url, policy: { ...policy(), pcrs: new Map([[0, other]]) } });
        expect(await codeOfAsync(() => wrong.attest())).toBe('ERR_ATTESTATION_PCR_MISMATCH');
      },
      STEP_TIMEOUT_MS,
    );

    it(
      'killing the enclave in the guest gives the typed 503 with Retry-After; a restarted enclave is reconnected, reloaded and serves again',
      async () => {
        const guestNow = running();
        const firstModule = client.attestation?.moduleId;
        let from = guestNow.lines.length;
        guestNow.send('kill-enclave');
        expect(await guestNow.waitFor(/^NITRO_VM enclave-exit \d+/, STEP_TIMEOUT_MS, from)).toBe(
          'NITRO_VM enclave-exit 137',
        );
        await guestNow.waitFor(
          /^NITRO_VM parent .*"event":"link\.(disconnected|retrying)"/,
          STEP_TIMEOUT_MS,
          from,
        );

        const nonce = randomBytes(32).toString('hex');
        const refused = await fetch(`${url}/v1/attestation?nonce=${nonce}`);
        expect(refused.status).toBe(503);
        expect(Number(refused.headers.get('retry-after'))).toBeGreaterThan(0);
        expect(((await refused.json()) as { error: { code: string } }).error.code).toBe(
          'ERR_LINK_UNAVAILABLE',
        );
        expect(await codeOfAsync(() => client.infer(MODEL_NAME, REQUEST))).toBe('ERR_LINK_UNAVAILABLE');

        from = guestNow.lines.length;
        guestNow.send('start-enclave');
        await guestNow.waitFor(/^NITRO_VM enclave \{"ready":"enclave"/, START_TIMEOUT_MS, from);
        const ready = jsonOf(
          await guestNow.waitFor(/^NITRO_VM parent .*"event":"link\.ready"/, STEP_TIMEOUT_MS, from),
        );
        expect(ready.reconnects).toBeGreaterThanOrEqual(1);
        await guestNow.waitFor(/^NITRO_VM parent .*"event":"model\.reloaded"/, STEP_TIMEOUT_MS, from);

        // The new enclave has new keys: the SDK notices the gateway no longer knows its key and
        // re-attests (a new module id); it does not resend an inference (it may have run), so the
        // retry gets the same outputs.
        expect(await codeOfAsync(() => client.infer(MODEL_NAME, REQUEST))).toBe('ERR_CLIENT_KEY_CHANGED');
        const result = await client.infer(MODEL_NAME, REQUEST);
        expect(result.response.outputs[0]!.data).toEqual(await direct());
        expect(client.attestation?.moduleId).not.toBe(firstModule);
      },
      START_TIMEOUT_MS + 2 * STEP_TIMEOUT_MS,
    );
  },
);
