/** The generated key policy: its shape, its refusals, and that the KMS simulator enforces it. */
import { mkdtemp, rm } from 'node:fs/promises';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { KMS } from '@aws-sdk/client-kms';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateEnclaveKeys } from '../../../enclave/keys.ts';
import { AttestedKms } from '../../../enclave/kms/attested-kms.ts';
import { buildKeyPolicy } from '../../../shared/key-policy.ts';
import { SimulatedNsm } from '../../../enclave/nsm/index.ts';
import { createSimulatedEnclaveIdentity, SimulatedNitroPki } from '../../../sim/index.ts';
import { KmsSimulator } from '../../../sim/kms/kms-simulator.ts';
import { codeOfAsync } from '../../helpers/codes.ts';

const ROLE = 'arn:aws:iam::111122223333:role/nitro-infer-parent';
const ADMIN = 'arn:aws:iam::111122223333:role/key-admin';
const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString('hex');

describe('key policy', () => {
  const pcrs = new Map([
    [0, 'a'.repeat(96)],
    [1, 'b'.repeat(96)],
    [2, 'c'.repeat(96)],
  ]);

  it('lets the role Decrypt only with the attested PCRs; admins manage but cannot decrypt', () => {
    const policy = buildKeyPolicy({ pcrs, keyAdministrators: [ADMIN], enclaveRole: ROLE, sealerRole: ADMIN });
    const statements = policy.Statement as {
      Sid: string;
      Action: string | string[];
      Principal: { AWS: string };
      Condition?: unknown;
    }[];
    const decrypt = statements.find((statement) => statement.Sid === 'EnclaveDecryptWithAttestation')!;
    expect(decrypt.Principal.AWS).toBe(ROLE);
    expect(decrypt.Condition).toEqual({
      StringEqualsIgnoreCase: {
        'kms:RecipientAttestation:ImageSha384': 'a'.repeat(96),
        'kms:RecipientAttestation:PCR1': 'b'.repeat(96),
        'kms:RecipientAttestation:PCR2': 'c'.repeat(96),
      },
    });
    for (const statement of statements.filter((entry) => entry.Sid !== 'EnclaveDecryptWithAttestation')) {
      expect([statement.Action].flat()).not.toContain('kms:Decrypt');
      expect([statement.Action].flat()).not.toContain('kms:*');
    }
    expect(JSON.stringify(policy)).not.toContain(':root');
  });

  it.each([
    [{ pcrs: new Map([[1, 'b'.repeat(96)]]) }, /PCR0/],
    [{ pcrs: new Map([[0, '0'.repeat(96)]]) }, /debug-mode/],
    [{ pcrs: new Map([[0, 'ab']]) }, /96 hex/],
    [
      {
        pcrs: new Map([
          [4, 'a'.repeat(96)],
          [0, 'a'.repeat(96)],
        ]),
      },
      /PCR4/,
    ],
    [{ pcrs, enclaveRole: 'parent' }, /not an IAM/],
    [{ pcrs, keyAdministrators: [] }, /administrator/],
  ])('refuses %#', (override, message) => {
    expect(() => buildKeyPolicy({ keyAdministrators: [ADMIN], enclaveRole: ROLE, ...override })).toThrow(
      message,
    );
  });
});

describe('key policy enforced by the KMS simulator', () => {
  let directory = '';
  let simulator: KmsSimulator;
  let operator: KMS;
  let pki: SimulatedNitroPki;

  beforeAll(async () => {
    directory = await mkdtemp(path.join(os.tmpdir(), 'ni-policy-'));
    pki = SimulatedNitroPki.create();
    simulator = await KmsSimulator.start({
      stateDirectory: directory,
      attestationRoots: [pki.rootCertificate],
      principalArn: ROLE,
    });
    operator = new KMS({
      region: simulator.info.region,
      endpoint: simulator.info.endpoint,
      credentials: {
        accessKeyId: simulator.info.accessKeyId,
        secretAccessKey: simulator.info.secretAccessKey,
      },
      requestHandler: new NodeHttpHandler({
        httpsAgent: new https.Agent({ ca: simulator.caCertificatePem }),
      }),
    });
  });
  afterAll(async () => {
    operator?.destroy();
    await simulator?.close();
    await rm(directory, { recursive: true, force: true });
  });

  it('an enclave with the pinned PCRs decrypts; one with another PCR0 or PCR2 is denied', async () => {
    const good = await createSimulatedEnclaveIdentity({ pki });
    const policyPcrs = new Map([
      [0, hex(good.measurements.pcr0)],
      [1, hex(good.measurements.pcr1)],
      [2, hex(good.measurements.pcr2)],
    ]);
    const policy = buildKeyPolicy({
      pcrs: policyPcrs,
      keyAdministrators: [ADMIN],
      enclaveRole: ROLE,
      sealerRole: ROLE,
    });
    const keyArn = (await operator.createKey({ Policy: JSON.stringify(policy) })).KeyMetadata!.Arn!;
    const blob = (await operator.generateDataKeyWithoutPlaintext({ KeyId: keyArn, NumberOfBytes: 32 }))
      .CiphertextBlob!;

    const decryptAs = async (bootPcrs: ReadonlyMap<number, Uint8Array>) => {
      const moduleId = `${pki.instanceId}-enc0000000000000001`;
      const nsm = new SimulatedNsm({
        identity: pki.signingIdentitySource(moduleId),
        moduleId,
        bootPcrs,
        clock: Date.now,
      });
      const client = new KMS({
        region: simulator.info.region,
        endpoint: simulator.info.endpoint,
        credentials: {
          accessKeyId: simulator.info.accessKeyId,
          secretAccessKey: simulator.info.secretAccessKey,
        },
        requestHandler: new NodeHttpHandler({
          httpsAgent: new https.Agent({ ca: simulator.caCertificatePem }),
        }),
      });
      try {
        const kms = new AttestedKms({
          client,
          nsm,
          keys: generateEnclaveKeys(),
          userData: () => new Uint8Array(0),
        });
        return await kms.decrypt({ CiphertextBlob: blob, KeyId: keyArn });
      } finally {
        client.destroy();
      }
    };
    const measured = new Map([
      [0, good.measurements.pcr0],
      [1, good.measurements.pcr1],
      [2, good.measurements.pcr2],
    ]);
    const changed = (index: number) => {
      const value = Uint8Array.from(measured.get(index)!);
      value[0]! ^= 0x01;
      return new Map([...measured, [index, value]]);
    };
    expect(await codeOfAsync(() => decryptAs(measured))).toBe('accepted');
    expect(await codeOfAsync(() => decryptAs(changed(0)))).toBe('ERR_KMS_ACCESS_DENIED');
    expect(await codeOfAsync(() => decryptAs(changed(2)))).toBe('ERR_KMS_ACCESS_DENIED');
    // Without an attestation (the parent's own credentials, no Recipient) nothing is released.
    const plain = await operator.decrypt({ CiphertextBlob: blob }).catch((error: Error) => error);
    expect((plain as Error).name).toBe('AccessDeniedException');
  });
});
