/**
 * Issue 10, attack 1: every route a KMS principal has to a cluster key it knows — the parent's,
 * the sealer's and the key administrator's credentials (one principal in the simulator holds all
 * three roles, as in the local stack) against the KMS simulator — ends with a key and a blob the
 * attacker knows. The enclave takes a cluster key from no KMS blob: the `ohttp.key` message that
 * installed one is gone, and a blob (or the attacker's own HPKE ciphertext of the key it knows)
 * sent as `cluster.accept` is refused because no genuine peer document binds it. Each attempt
 * leaves the enclave up, its key unchanged, and a legitimate client served.
 */
import https from 'node:https';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { KMS } from '@aws-sdk/client-kms';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KmsSimulator } from '../../sim/kms/kms-simulator.ts';
import { LOCAL_ACCOUNT, LOCAL_PRINCIPAL, localKeyPolicy } from '../../sim/local-stack.ts';
import { clientStatus, requestBindingOf, sealKnownKey } from '../helpers/cluster-attacker.ts';
import { startTestEnclave } from '../helpers/cluster-enclaves.ts';
import type { TestEnclave } from '../helpers/cluster-enclaves.ts';
import type { TestLinkClient } from '../helpers/link-client.ts';

/** The encryption context the removed KMS cluster key was generated under. */
const OLD_CLUSTER_CONTEXT = { 'nitro-infer:purpose': 'ohttp-cluster-key' };

let directory = '';
let simulator: KmsSimulator;
let kms: KMS;
let keyArn = '';
let enclave: TestEnclave;
let link: TestLinkClient;

const bytes = (value: Uint8Array | undefined) => new Uint8Array(value!);

/** The administrator's policy change: Decrypt and ReEncrypt for its own principal, no attestation. */
async function loosenPolicy(): Promise<void> {
  const policy = JSON.parse(localKeyPolicy(enclave.identity.measurements)) as { Statement: unknown[] };
  policy.Statement.push({
    Sid: 'ChangedAfterInstall',
    Effect: 'Allow',
    Principal: { AWS: LOCAL_PRINCIPAL },
    Action: ['kms:Decrypt', 'kms:ReEncryptFrom', 'kms:ReEncryptTo'],
    Resource: '*',
  });
  await kms.putKeyPolicy({ KeyId: keyArn, PolicyName: 'default', Policy: JSON.stringify(policy) });
}

/** Each route yields a blob and the 32-byte plaintext the attacker holds. */
const ROUTES: [string, () => Promise<{ blob: Uint8Array; known: Uint8Array }>][] = [
  [
    'GenerateDataKey with the old cluster-key context (sealer role)',
    async () => {
      const made = await kms.generateDataKey({
        KeyId: keyArn,
        NumberOfBytes: 32,
        EncryptionContext: OLD_CLUSTER_CONTEXT,
      });
      return { blob: bytes(made.CiphertextBlob), known: bytes(made.Plaintext) };
    },
  ],
  [
    'Encrypt of a key the caller chose (sealer role)',
    async () => {
      const known = new Uint8Array(32).fill(7);
      const made = await kms.encrypt({
        KeyId: keyArn,
        Plaintext: known,
        EncryptionContext: OLD_CLUSTER_CONTEXT,
      });
      return { blob: bytes(made.CiphertextBlob), known };
    },
  ],
  [
    'a stored GenerateDataKeyWithoutPlaintext blob read after PutKeyPolicy (administrator)',
    async () => {
      const made = await kms.generateDataKeyWithoutPlaintext({
        KeyId: keyArn,
        NumberOfBytes: 32,
        EncryptionContext: OLD_CLUSTER_CONTEXT,
      });
      await loosenPolicy();
      const opened = await kms.decrypt({
        CiphertextBlob: made.CiphertextBlob,
        EncryptionContext: OLD_CLUSTER_CONTEXT,
      });
      return { blob: bytes(made.CiphertextBlob), known: bytes(opened.Plaintext) };
    },
  ],
  [
    'ReEncrypt of a known blob from a looser key onto the attestation key',
    async () => {
      const looser = await kms.createKey({ Description: 'no attestation condition' });
      const known = new Uint8Array(32).fill(3);
      const first = await kms.encrypt({
        KeyId: looser.KeyMetadata!.Arn!,
        Plaintext: known,
        EncryptionContext: OLD_CLUSTER_CONTEXT,
      });
      await loosenPolicy();
      const moved = await kms.reEncrypt({
        CiphertextBlob: first.CiphertextBlob,
        SourceEncryptionContext: OLD_CLUSTER_CONTEXT,
        DestinationKeyId: keyArn,
        DestinationEncryptionContext: OLD_CLUSTER_CONTEXT,
      });
      return { blob: bytes(moved.CiphertextBlob), known };
    },
  ],
  [
    'GenerateDataKey on a looser key the administrator created',
    async () => {
      const looser = await kms.createKey({ Description: 'no attestation condition' });
      const made = await kms.generateDataKey({
        KeyId: looser.KeyMetadata!.Arn!,
        NumberOfBytes: 32,
        EncryptionContext: OLD_CLUSTER_CONTEXT,
      });
      return { blob: bytes(made.CiphertextBlob), known: bytes(made.Plaintext) };
    },
  ],
];

beforeAll(async () => {
  directory = await mkdtemp(path.join(os.tmpdir(), 'ni-ck-'));
  enclave = await startTestEnclave(directory, 'victim', undefined);
  simulator = await KmsSimulator.start({
    stateDirectory: path.join(directory, 'kms'),
    attestationRoots: [enclave.identity.pki.rootCertificate],
    account: LOCAL_ACCOUNT,
    principalArn: LOCAL_PRINCIPAL,
  });
  kms = new KMS({
    region: simulator.info.region,
    endpoint: simulator.info.endpoint,
    credentials: { accessKeyId: simulator.info.accessKeyId, secretAccessKey: simulator.info.secretAccessKey },
    requestHandler: new NodeHttpHandler({ httpsAgent: new https.Agent({ ca: simulator.caCertificatePem }) }),
  });
  keyArn = (await kms.createKey({ Policy: localKeyPolicy(enclave.identity.measurements) })).KeyMetadata!.Arn!;
  link = await enclave.connect();
}, 60_000);

afterAll(async () => {
  link?.close();
  kms?.destroy();
  await simulator?.close();
  await enclave?.close();
  await rm(directory, { recursive: true, force: true });
});

describe('a cluster key planted through KMS is refused', () => {
  it.each(ROUTES)('%s', async (_route, plant) => {
    const { blob, known } = await plant();
    expect(known.byteLength).toBe(32); // the attacker really holds a key
    const before = await link.request('cluster.status');
    const keyConfig = (await link.request('attest', {})).fields.get('keyConfig') as Uint8Array;

    // The old route: the message that installed a KMS blob no longer exists.
    expect(await link.code('ohttp.key', { blob })).toBe('ERR_LINK_REQUEST_INVALID');

    // The one route that installs a key: an answer to this enclave's own request. The attacker
    // seals the key it knows to the exchange key the (public) request document binds ...
    const request = (
      await link.request('cluster.request', { challenge: new Uint8Array(32).fill(1) })
    ).fields.get('document') as Uint8Array;
    const binding = requestBindingOf(request, [enclave.identity.pki.rootCertificate]);
    const sealed = await sealKnownKey(request, binding.exchangeKey, known);
    // ... and has only the KMS blob to offer as the holder's document.
    const refused = await link.request('cluster.accept', {
      document: blob,
      enc: sealed.enc,
      ciphertext: sealed.ciphertext,
    });
    expect(refused.type).toBe('error');
    expect(refused.fields.get('code')).toBe('ERR_CLUSTER_PEER_UNTRUSTED');

    // Up, unchanged, and serving the client that attested its key.
    expect((await link.request('cluster.status')).fields).toEqual(before.fields);
    expect(await clientStatus(link, keyConfig)).toBe(200);
  });
});
