/**
 * The attested KMS path with real parts: the real `@aws-sdk/client-kms` in the enclave, TLS to the
 * KMS host name over a Unix-socket transport through the parent's forwarder, the KMS simulator
 * verifying SigV4 and the enclave's attestation against the key policy.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import https from 'node:https';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { KMS } from '@aws-sdk/client-kms';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AttestedKms } from '../../enclave/kms/attested-kms.ts';
import { CredentialStore } from '../../enclave/kms/credentials.ts';
import { createKmsClient } from '../../enclave/kms/kms-client.ts';
import { generateEnclaveKeys } from '../../enclave/keys.ts';
import { createSimulatedEnclaveIdentity } from '../../sim/index.ts';
import type { SimulatedEnclaveIdentity } from '../../sim/index.ts';
import { KmsSimulator } from '../../sim/kms/kms-simulator.ts';
import { startLocalKms } from '../../sim/local-kms.ts';
import type { LocalKms } from '../../sim/local-kms.ts';
import { codeOfAsync } from '../helpers/codes.ts';

let directory = '';
let simulator: KmsSimulator;
let localKms: LocalKms;
let enclave: SimulatedEnclaveIdentity;
let operator: KMS;

function attestationPolicy(account: string, conditions: Record<string, string>): string {
  return JSON.stringify({
    Version: '2012-10-17',
    Statement: [
      {
        Sid: 'admin',
        Effect: 'Allow',
        Principal: { AWS: `arn:aws:iam::${account}:root` },
        Action: ['kms:CreateAlias', 'kms:DescribeKey', 'kms:GenerateDataKey', 'kms:Encrypt'],
        Resource: '*',
      },
      {
        Sid: 'enclave',
        Effect: 'Allow',
        Principal: { AWS: `arn:aws:iam::${account}:root` },
        Action: 'kms:Decrypt',
        Resource: '*',
        Condition: { StringEqualsIgnoreCase: conditions },
      },
    ],
  });
}

beforeAll(async () => {
  directory = await mkdtemp(path.join(os.tmpdir(), 'nitro-infer-kms-'));
  enclave = await createSimulatedEnclaveIdentity();
  localKms = await startLocalKms(directory, [enclave.pki.rootCertificate]);
  ({ simulator, operator } = localKms);
});

afterAll(async () => {
  await localKms?.close();
  await rm(directory, { recursive: true, force: true });
});

function attestedKms(credentials = new CredentialStore()) {
  const keys = generateEnclaveKeys();
  const client = createKmsClient({
    region: simulator.info.region,
    openTransport: () => net.connect(localKms.socketPath),
    credentials,
    extraCaCertificates: [simulator.caCertificatePem],
  });
  return {
    kms: new AttestedKms({ client, nsm: enclave.nsm, keys, userData: () => new Uint8Array([0xa0]) }),
    credentials,
  };
}

describe('attested KMS Decrypt through the parent forwarder', () => {
  it('releases the data key only to the enclave whose PCR0 the policy names, wrapped to its key', async () => {
    const pcr0 = Buffer.from(enclave.measurements.pcr0).toString('hex');
    const key = await operator.createKey({
      Policy: attestationPolicy('111122223333', {
        'kms:RecipientAttestation:ImageSha384': pcr0.toUpperCase(),
      }),
    });
    const context = { 'nitro-infer:model': 'm' };
    const dataKey = await operator.generateDataKey({
      KeyId: key.KeyMetadata!.Arn!,
      KeySpec: 'AES_256',
      EncryptionContext: context,
    });

    const { kms, credentials } = attestedKms();
    expect(
      await codeOfAsync(() =>
        kms.decrypt({ CiphertextBlob: dataKey.CiphertextBlob!, EncryptionContext: context }),
      ),
    ).toBe('ERR_KMS_NO_CREDENTIALS');
    credentials.set({
      accessKeyId: simulator.info.accessKeyId,
      secretAccessKey: simulator.info.secretAccessKey,
    });
    const released = await kms.decrypt({
      CiphertextBlob: dataKey.CiphertextBlob!,
      EncryptionContext: context,
      KeyId: key.KeyMetadata!.Arn!,
    });
    expect(released.KeyId).toBe(key.KeyMetadata!.Arn);
    expect(Buffer.from(released.Plaintext).equals(Buffer.from(dataKey.Plaintext!))).toBe(true);

    // Without Recipient the operator's Decrypt is refused: the policy only allows attested calls.
    await expect(
      operator.decrypt({ CiphertextBlob: dataKey.CiphertextBlob!, EncryptionContext: context }),
    ).rejects.toMatchObject({ name: 'AccessDeniedException' });
    // A wrong encryption context does not decrypt.
    expect(
      await codeOfAsync(() =>
        kms.decrypt({
          CiphertextBlob: dataKey.CiphertextBlob!,
          EncryptionContext: { 'nitro-infer:model': 'other' },
        }),
      ),
    ).toBe('ERR_KMS_INVALID_CIPHERTEXT');
  });

  it('is refused when the policy pins a different PCR0', async () => {
    const wrong = Buffer.from(enclave.measurements.pcr0);
    wrong[0]! ^= 1;
    const key = await operator.createKey({
      Policy: attestationPolicy('111122223333', { 'kms:RecipientAttestation:PCR0': wrong.toString('hex') }),
    });
    const dataKey = await operator.generateDataKey({ KeyId: key.KeyMetadata!.Arn!, KeySpec: 'AES_256' });
    const { kms, credentials } = attestedKms();
    credentials.set({
      accessKeyId: simulator.info.accessKeyId,
      secretAccessKey: simulator.info.secretAccessKey,
    });
    expect(await codeOfAsync(() => kms.decrypt({ CiphertextBlob: dataKey.CiphertextBlob! }))).toBe(
      'ERR_KMS_ACCESS_DENIED',
    );
  });

  it('refuses a KMS endpoint whose TLS certificate no trusted CA signed', async () => {
    const key = await operator.createKey({});
    const dataKey = await operator.generateDataKey({ KeyId: key.KeyMetadata!.Arn!, KeySpec: 'AES_256' });
    const credentials = new CredentialStore();
    credentials.set({
      accessKeyId: simulator.info.accessKeyId,
      secretAccessKey: simulator.info.secretAccessKey,
    });
    const client = createKmsClient({
      region: simulator.info.region,
      openTransport: () => net.connect(localKms.socketPath),
      credentials,
      extraCaCertificates: [], // the public roots only: the simulator's CA is not among them
    });
    const kms = new AttestedKms({
      client,
      nsm: enclave.nsm,
      keys: generateEnclaveKeys(),
      userData: () => new Uint8Array([0xa0]),
    });
    expect(await codeOfAsync(() => kms.decrypt({ CiphertextBlob: dataKey.CiphertextBlob! }))).toBe(
      'ERR_KMS_UNAVAILABLE',
    );
  });

  it('refuses requests signed with the wrong secret', async () => {
    const key = await operator.createKey({});
    const dataKey = await operator.generateDataKey({ KeyId: key.KeyMetadata!.Arn!, KeySpec: 'AES_256' });
    const { kms, credentials } = attestedKms();
    credentials.set({ accessKeyId: simulator.info.accessKeyId, secretAccessKey: 'x'.repeat(40) });
    expect(await codeOfAsync(() => kms.decrypt({ CiphertextBlob: dataKey.CiphertextBlob! }))).toBe(
      'ERR_KMS_UNAVAILABLE',
    );
  });

  describe('credentials pushed after the first KMS call', () => {
    async function sealedDataKey() {
      const pcr0 = Buffer.from(enclave.measurements.pcr0).toString('hex');
      const key = await operator.createKey({
        Policy: attestationPolicy('111122223333', { 'kms:RecipientAttestation:ImageSha384': pcr0 }),
      });
      const dataKey = await operator.generateDataKey({ KeyId: key.KeyMetadata!.Arn!, KeySpec: 'AES_256' });
      return { blob: dataKey.CiphertextBlob!, plaintext: Buffer.from(dataKey.Plaintext!) };
    }
    const wrong = () => ({ accessKeyId: simulator.info.accessKeyId, secretAccessKey: 'w'.repeat(40) });
    const right = () => ({
      accessKeyId: simulator.info.accessKeyId,
      secretAccessKey: simulator.info.secretAccessKey,
    });

    it('a right push after a wrong one takes effect at the next call (and a wrong one again too)', async () => {
      const { blob, plaintext } = await sealedDataKey();
      const { kms, credentials } = attestedKms();
      credentials.set(wrong());
      expect(await codeOfAsync(() => kms.decrypt({ CiphertextBlob: blob }))).toBe('ERR_KMS_UNAVAILABLE');
      credentials.set(right());
      const released = await kms.decrypt({ CiphertextBlob: blob });
      expect(Buffer.from(released.Plaintext).equals(plaintext)).toBe(true);
      credentials.set(wrong());
      expect(await codeOfAsync(() => kms.decrypt({ CiphertextBlob: blob }))).toBe('ERR_KMS_UNAVAILABLE');
      // Pushed credentials with a real expiration far ahead are re-read just the same.
      credentials.set({ ...right(), expiration: new Date(Date.now() + 3_600_000) });
      expect((await kms.decrypt({ CiphertextBlob: blob })).KeyId).toMatch(/^arn:aws:kms:/);
    });

    it('control: a provider whose identities carry no expiration is cached by the SDK for good', async () => {
      const { blob } = await sealedDataKey();
      const store = new CredentialStore();
      // What the store handed the SDK before: the pushed fields, without an expiration.
      const stripped = {
        provider: async () => {
          const identity = await store.provider();
          return { accessKeyId: identity.accessKeyId, secretAccessKey: identity.secretAccessKey };
        },
      } as unknown as CredentialStore;
      const { kms } = attestedKms(stripped);
      store.set(wrong());
      expect(await codeOfAsync(() => kms.decrypt({ CiphertextBlob: blob }))).toBe('ERR_KMS_UNAVAILABLE');
      store.set(right());
      // The SDK never asks again: the right push is ignored and the load still fails.
      expect(await codeOfAsync(() => kms.decrypt({ CiphertextBlob: blob }))).toBe('ERR_KMS_UNAVAILABLE');
    });
  });

  it('refuses a Recipient document not signed by the trusted Nitro root', async () => {
    const stranger = await createSimulatedEnclaveIdentity(); // its own PKI, unknown to the simulator
    const key = await operator.createKey({});
    const dataKey = await operator.generateDataKey({ KeyId: key.KeyMetadata!.Arn!, KeySpec: 'AES_256' });
    const keys = generateEnclaveKeys();
    const document = await stranger.nsm.attest({ publicKey: keys.kmsRecipient.publicKeySpki });
    await expect(
      operator.decrypt({
        CiphertextBlob: dataKey.CiphertextBlob!,
        Recipient: { KeyEncryptionAlgorithm: 'RSAES_OAEP_SHA_256', AttestationDocument: document },
      }),
    ).rejects.toMatchObject({ name: 'ValidationException' });
  });

  it('keeps keys across a restart of the simulator', async () => {
    const key = await operator.createKey({});
    const sealed = await operator.encrypt({
      KeyId: key.KeyMetadata!.Arn!,
      Plaintext: new TextEncoder().encode('persist'),
      EncryptionContext: { a: 'b' },
    });
    const restarted = await KmsSimulator.start({
      stateDirectory: path.join(directory, 'kms'),
      attestationRoots: [],
    });
    try {
      const client = new KMS({
        region: restarted.info.region,
        endpoint: restarted.info.endpoint,
        credentials: {
          accessKeyId: restarted.info.accessKeyId,
          secretAccessKey: restarted.info.secretAccessKey,
        },
        requestHandler: new NodeHttpHandler({
          httpsAgent: new https.Agent({ ca: restarted.caCertificatePem }),
        }),
      });
      const opened = await client.decrypt({
        CiphertextBlob: sealed.CiphertextBlob!,
        EncryptionContext: { a: 'b' },
      });
      expect(new TextDecoder().decode(opened.Plaintext)).toBe('persist');
      expect(restarted.info.accessKeyId).toBe(simulator.info.accessKeyId);
    } finally {
      await restarted.close();
    }
  });
});
