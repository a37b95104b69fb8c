/**
 * Unsealing with the digest inline and in a worker thread: both give the same plaintext, and both
 * refuse (and wipe) a model whose bytes do not hash to the digest sealed with it.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DigestWorker, MAX_QUEUED_BYTES } from '../../../../enclave/models/digest-worker.ts';
import { unsealModel } from '../../../../enclave/models/unseal.ts';
import type { DecryptRequest } from '../../../../enclave/kms/attested-kms.ts';
import { createSealStream } from '../../../../shared/sealing/index.ts';
import { startLocalKms } from '../../../../sim/local-kms.ts';
import type { LocalKms } from '../../../../sim/local-kms.ts';
import { codeOfAsync } from '../../../helpers/codes.ts';

let directory: string;
let kms: LocalKms;
let keyArn: string;

/** KMS Decrypt without the attestation (the operator's client): unsealing is what is tested here. */
async function decrypt(request: DecryptRequest): Promise<{ KeyId: string; Plaintext: Uint8Array }> {
  const reply = await kms.operator.decrypt(request);
  return { KeyId: reply.KeyId!, Plaintext: reply.Plaintext! };
}

async function seal(name: string, model: Uint8Array, sha384?: string): Promise<Uint8Array> {
  const stream = createSealStream({
    kms: kms.operator,
    keyArn,
    model: { name, sha384: sha384 ?? createHash('sha384').update(model).digest('hex') },
    plaintextLength: model.byteLength,
  });
  Readable.from([model]).pipe(stream);
  return new Uint8Array(await buffer(stream));
}

/** The artifact in 100 KiB pieces, as the link delivers it (not aligned to the SDK's frames). */
function pieces(artifact: Uint8Array): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let offset = 0; offset < artifact.byteLength; offset += 100 * 1024)
    out.push(artifact.subarray(offset, offset + 100 * 1024));
  return out;
}

beforeAll(async () => {
  directory = await mkdtemp(path.join(os.tmpdir(), 'ni-unseal-'));
  kms = await startLocalKms(directory, []);
  keyArn = (await kms.operator.createKey({})).KeyMetadata!.Arn!;
});

afterAll(async () => {
  await kms?.close();
  await rm(directory, { recursive: true, force: true });
});

describe('unseal', () => {
  const model = randomBytes(3 * 1024 * 1024 + 123);

  for (const digest of ['inline', 'worker'] as const) {
    it(`decrypts in place with the digest ${digest}`, async () => {
      const artifact = await seal('m', model);
      const output = { view: new Uint8Array(artifact.byteLength + 4096), written: 0 };
      const unsealed = await unsealModel({
        ciphertext: pieces(artifact),
        ciphertextBytes: artifact.byteLength,
        decrypt,
        output,
        digest,
      });
      expect(unsealed.identity.name).toBe('m');
      expect(unsealed.plaintext.buffer).toBe(output.view.buffer); // a view of the caller's buffer
      expect(Buffer.from(unsealed.plaintext).equals(model)).toBe(true);
      expect(output.written).toBe(model.byteLength);
    });

    it(`refuses and wipes a model whose bytes do not hash to its sealed digest (${digest})`, async () => {
      const other = createHash('sha384').update('another model').digest('hex');
      const artifact = await seal('m', model, other);
      const output = { view: new Uint8Array(artifact.byteLength), written: 0 };
      expect(
        await codeOfAsync(() =>
          unsealModel({
            ciphertext: pieces(artifact),
            ciphertextBytes: artifact.byteLength,
            decrypt,
            output,
            digest,
          }),
        ),
      ).toBe('ERR_MODEL_DIGEST_MISMATCH');
      expect(output.written).toBe(0);
      expect(output.view.every((byte) => byte === 0)).toBe(true);
    });
  }

  it('fails a truncated artifact with the digest in a worker, and wipes what it wrote', async () => {
    const artifact = await seal('m', model);
    const output = { view: new Uint8Array(artifact.byteLength), written: 0 };
    const truncated = artifact.subarray(0, artifact.byteLength - 1000);
    expect(
      await codeOfAsync(() =>
        unsealModel({
          ciphertext: pieces(truncated),
          ciphertextBytes: artifact.byteLength,
          decrypt,
          output,
          digest: 'worker',
        }),
      ),
    ).toBe('ERR_DECRYPT_FAILED');
    expect(output.written).toBe(0);
    expect(output.view.every((byte) => byte === 0)).toBe(true);
  });

  it('hashes in a worker what a single thread would, and leaves no plaintext behind in the chunks', async () => {
    const worker = new DigestWorker();
    const expected = createHash('sha384');
    const views: Uint8Array[] = [];
    const owned: Uint8Array[] = [];
    // More than the queue's bound, so the sender waits for the worker at least once.
    for (let index = 0; index < (2 * MAX_QUEUED_BYTES) / (512 * 1024); index++) {
      const whole = randomBytes(1024 * 1024);
      expected.update(whole);
      const first = new Uint8Array(whole.buffer, whole.byteOffset, 512 * 1024); // a view: copied, then zeroed
      const second = new Uint8Array(whole.subarray(512 * 1024)); // owns its buffer: transferred
      await worker.update(first);
      await worker.update(second);
      views.push(first);
      owned.push(second);
    }
    expect((await worker.digest()).equals(expected.digest())).toBe(true);
    expect(views.every((view) => view.every((byte) => byte === 0))).toBe(true);
    expect(owned.every((chunk) => chunk.byteLength === 0)).toBe(true); // detached
  });
});

describe('digest worker', () => {
  it('zeroes the chunks it still queues when it is closed before hashing them', async () => {
    const worker = new DigestWorker();
    // Shared memory stays visible here after it is handed over, so what the worker does to it shows.
    const chunks: Uint8Array[] = [];
    for (let index = 0; index < MAX_QUEUED_BYTES / (1024 * 1024); index++) {
      const chunk = new Uint8Array(new SharedArrayBuffer(1024 * 1024));
      chunk.fill(0xa5);
      chunks.push(chunk);
    }
    // Within the queue's bound: none of these waits, so all are still queued (the worker is only starting).
    for (const chunk of chunks) await worker.update(chunk);
    await worker.close();
    expect(chunks.every((chunk) => chunk.every((byte) => byte === 0))).toBe(true);
  });

  it('zeroes a chunk it refuses after being closed', async () => {
    const worker = new DigestWorker();
    await worker.close();
    const whole = randomBytes(64 * 1024);
    const chunk = new Uint8Array(whole.buffer, whole.byteOffset, 32 * 1024); // a view: not transferable
    expect(await codeOfAsync(() => worker.update(chunk))).toBe('ERR_MODEL_LOAD_FAILED');
    expect(chunk.every((byte) => byte === 0)).toBe(true);
  });
});
