/**
 * Unsealing a model inside the enclave (DESIGN.md 2, 4.7): the ciphertext streams in, the
 * Encryption SDK's KMS keyring obtains the data key through the attested `Decrypt`, every frame is
 * authenticated before its plaintext is released, the plaintext lands in one buffer sized from the
 * declared artifact size (lent by the memory budget's pool, never allocated here), and its SHA-384
 * must equal the digest bound in the encryption context. On any failure the written part of the
 * buffer is overwritten and a typed error says which check failed.
 *
 * For large models the SHA-384 runs in a worker thread ({@link DigestWorker}) while this thread
 * decrypts, so the two overlap on two cores (an enclave has at least two vCPUs); small models hash
 * inline, where a thread's start-up would cost more than it saves.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { KmsKeyringNode } from '@aws-crypto/client-node';
import type { ModelIdentity } from '../../shared/binding.ts';
import { ModelError, isNitroInferError } from '../../shared/errors.ts';
import type { NitroInferError } from '../../shared/errors.ts';
import { encryptionSdk, identityFromContext } from '../../shared/sealing/index.ts';
import type { KmsClientSupplier } from '../../shared/sealing/index.ts';
import type { DecryptRequest } from '../kms/attested-kms.ts';
import { DigestWorker } from './digest-worker.ts';

/** Artifacts from this size on hash in a worker thread (bench/unseal.bench.ts: both ways measured). */
export const DIGEST_WORKER_MIN_BYTES = 16 * 1024 * 1024;

/** Options of {@link unsealModel}. */
export interface UnsealOptions {
  /** The artifact's bytes as they arrive (a byte stream, or chunks). */
  readonly ciphertext: Readable | AsyncIterable<Uint8Array> | Iterable<Uint8Array>;
  /** The artifact's declared size; the plaintext is never larger. */
  readonly ciphertextBytes: number;
  /** The attested KMS `Decrypt`. */
  readonly decrypt: (request: DecryptRequest) => Promise<{ KeyId: string; Plaintext: Uint8Array }>;
  /** KMS keys artifacts may be sealed with; any key (KMS policy decides) when absent. */
  readonly allowedKeyArns?: readonly string[];
  /** Refuse an artifact sealed under another model name. */
  readonly expectedName?: string;
  /**
   * Where the plaintext goes: `view` at least `ciphertextBytes` long; `written` is kept up to date
   * so that only written bytes need zeroing later (a `BufferLease` from the memory budget).
   */
  readonly output: { readonly view: Uint8Array; written: number };
  /** Where the SHA-384 runs; by default in a worker from {@link DIGEST_WORKER_MIN_BYTES} on. */
  readonly digest?: 'inline' | 'worker';
}

/** A decrypted, digest-checked model: `plaintext` is a view of the caller's `output`. */
export interface UnsealedModel {
  readonly identity: ModelIdentity;
  readonly plaintext: Uint8Array;
}

/**
 * Decrypts and checks a sealed model.
 * @throws {NitroInferError} `ERR_ARTIFACT_INVALID`, `ERR_KMS_*`, `ERR_DECRYPT_FAILED`,
 *   `ERR_MODEL_DIGEST_MISMATCH` or `ERR_MODEL_LOAD_FAILED`.
 */
export async function unsealModel(options: UnsealOptions): Promise<UnsealedModel> {
  let kmsFailure: NitroInferError | undefined;
  // The keyring asks KMS only once the Encryption SDK has parsed a well-formed header: a failure
  // before that means the bytes are not a (supported) Encryption SDK message at all.
  let headerParsed = false;
  const client = {
    decrypt: async (request: DecryptRequest) => {
      headerParsed = true;
      try {
        return await options.decrypt(request);
      } catch (error) {
        // The keyring folds every failure into one message; keep ours so the caller learns it was KMS.
        if (isNitroInferError(error)) kmsFailure = error;
        throw error;
      }
    },
  };
  const clientProvider = (() => client) as unknown as KmsClientSupplier;
  const keyring =
    options.allowedKeyArns === undefined
      ? new KmsKeyringNode({ discovery: true, clientProvider })
      : new KmsKeyringNode({ keyIds: [...options.allowedKeyArns], clientProvider });

  const output = options.output;
  if (output.view.byteLength < options.ciphertextBytes)
    throw new ModelError('ERR_MODEL_LOAD_FAILED', 'the plaintext buffer is smaller than the artifact');
  const plaintext = output.view.subarray(0, options.ciphertextBytes);
  // Zeroes only what was written; untouched pages of a fresh buffer stay unmapped.
  const wipe = () => {
    plaintext.fill(0, 0, length);
    output.written = 0;
  };
  const useWorker =
    (options.digest ?? (options.ciphertextBytes >= DIGEST_WORKER_MIN_BYTES ? 'worker' : 'inline')) ===
    'worker';
  const digestWorker = useWorker ? new DigestWorker() : undefined;
  const hash = useWorker ? undefined : createHash('sha384');
  let length = 0;
  let identity: ModelIdentity | undefined;
  let contextFailure: NitroInferError | undefined;

  const decryptStream = encryptionSdk.decryptStream(keyring, { maxBodySize: options.ciphertextBytes });
  decryptStream.once('MessageHeader', (header: { encryptionContext: Record<string, string> }) => {
    try {
      identity = identityFromContext(header.encryptionContext);
      if (options.expectedName !== undefined && identity.name !== options.expectedName) {
        throw new ModelError(
          'ERR_ARTIFACT_INVALID',
          `the artifact is sealed for model ${identity.name}, not ${options.expectedName}`,
        );
      }
    } catch (error) {
      contextFailure = error as NitroInferError;
      decryptStream.destroy(contextFailure);
    }
  });
  const sink = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      if (length + chunk.byteLength > plaintext.byteLength) {
        callback(new ModelError('ERR_MODEL_LOAD_FAILED', 'the plaintext is larger than the artifact'));
        return;
      }
      plaintext.set(chunk, length);
      length += chunk.byteLength;
      output.written = length;
      if (digestWorker !== undefined) {
        // The worker zeroes (or has detached) the chunk; this resolves at once unless it lags behind.
        digestWorker.update(chunk).then(() => callback(), callback);
        return;
      }
      hash?.update(chunk);
      chunk.fill(0);
      callback();
    },
  });

  try {
    // A stream is piped as it is: Readable.from() would read it through an async iterator, and a
    // paused stream's read() joins everything it buffers into one new buffer (a copy per turn).
    const source =
      options.ciphertext instanceof Readable ? options.ciphertext : Readable.from(options.ciphertext);
    await pipeline(source, decryptStream, sink);
  } catch (error) {
    wipe();
    await digestWorker?.close();
    if (contextFailure !== undefined) throw contextFailure;
    // A tampered encrypted data key is an authentication failure like any other flipped byte:
    // one code for all of them (STYLE.md 4). KMS refusals for other reasons keep their code.
    if (kmsFailure !== undefined && kmsFailure.code !== 'ERR_KMS_INVALID_CIPHERTEXT') throw kmsFailure;
    if (isNitroInferError(error) && error.code === 'ERR_MODEL_LOAD_FAILED') throw error;
    if (!headerParsed && kmsFailure === undefined) {
      throw new ModelError(
        'ERR_ARTIFACT_INVALID',
        'the artifact is not an Encryption SDK message (its header is malformed, truncated or of an unsupported suite)',
      );
    }
    // Truncation, a flipped byte, a wrong key: the Encryption SDK's authentication refused it.
    throw new ModelError('ERR_DECRYPT_FAILED', 'decryption failed');
  }
  if (identity === undefined) {
    wipe();
    await digestWorker?.close();
    throw new ModelError('ERR_ARTIFACT_INVALID', 'the artifact has no header');
  }
  let digest: Buffer;
  try {
    digest =
      digestWorker === undefined
        ? (hash as ReturnType<typeof createHash>).digest()
        : await digestWorker.digest();
  } catch (error) {
    wipe();
    await digestWorker?.close();
    throw error;
  }
  if (!timingSafeEqual(digest, Buffer.from(identity.sha384, 'hex'))) {
    wipe();
    throw new ModelError(
      'ERR_MODEL_DIGEST_MISMATCH',
      `the decrypted model does not hash to the digest sealed for ${identity.name}`,
    );
  }
  return { identity, plaintext: plaintext.subarray(0, length) };
}
