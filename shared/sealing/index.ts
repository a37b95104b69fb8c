/**
 * Sealed model artifacts (DESIGN.md 4.7): the AWS Encryption SDK message format — framed, with a
 * key-committing algorithm suite and an ECDSA P-384 signature — so artifacts can be produced and
 * audited with AWS's own tools. The encryption context binds the model's name and the SHA-384 of
 * its plaintext; the enclave refuses an artifact whose decrypted bytes do not hash to it.
 */
import type { Duplex } from 'node:stream';
import {
  AlgorithmSuiteIdentifier,
  CommitmentPolicy,
  KmsKeyringNode,
  buildClient,
} from '@aws-crypto/client-node';
import type { KMS } from '@aws-sdk/client-kms';

/** What the Encryption SDK's KMS keyring calls to get a client. */
export type KmsClientSupplier = NonNullable<
  NonNullable<ConstructorParameters<typeof KmsKeyringNode>[0]>['clientProvider']
>;
import { ModelError } from '../errors.ts';
import type { ModelIdentity } from '../binding.ts';

/** Encryption context key of the model name. */
export const CONTEXT_MODEL_NAME = 'nitro-infer:model';
/** Encryption context key of the plaintext SHA-384 (hex). */
export const CONTEXT_MODEL_SHA384 = 'nitro-infer:sha384';

/** Model names: what a URL path segment and a metric label can carry safely. */
export const MODEL_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

/** Committing, signed: a holder of the data key cannot forge or re-target an artifact. */
export const SEALING_ALGORITHM_SUITE =
  AlgorithmSuiteIdentifier.ALG_AES256_GCM_IV12_TAG16_HKDF_SHA512_COMMIT_KEY_ECDSA_P384;

/**
 * Frames of 1 MiB: the Encryption SDK's per-frame work (buffers, tags, stream turns) cost ~20% of the
 * unseal's CPU at 64 KiB (bench/unseal.bench.ts); a frame is still small beside a link chunk's window,
 * and its plaintext is released only once its tag checks. Artifacts sealed with 64 KiB frames still
 * open: the frame length is read from each artifact's header.
 */
export const SEALING_FRAME_BYTES = 1024 * 1024;

/** The Encryption SDK client, requiring key commitment on encrypt and decrypt. */
export const encryptionSdk = buildClient({
  commitmentPolicy: CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT,
  maxEncryptedDataKeys: 1,
});

/**
 * The encryption context of a sealed model.
 * @throws {ModelError} `ERR_ARTIFACT_INVALID` for a bad name or digest.
 */
export function sealingContext(model: ModelIdentity): Record<string, string> {
  checkIdentity(model);
  return { [CONTEXT_MODEL_NAME]: model.name, [CONTEXT_MODEL_SHA384]: model.sha384 };
}

/**
 * Reads the model identity from an artifact's encryption context.
 * @throws {ModelError} `ERR_ARTIFACT_INVALID`.
 */
export function identityFromContext(context: Readonly<Record<string, string>>): ModelIdentity {
  const name = context[CONTEXT_MODEL_NAME];
  const sha384 = context[CONTEXT_MODEL_SHA384];
  if (name === undefined || sha384 === undefined) {
    throw new ModelError(
      'ERR_ARTIFACT_INVALID',
      `the artifact's encryption context lacks ${CONTEXT_MODEL_NAME} or ${CONTEXT_MODEL_SHA384}`,
    );
  }
  const identity = { name, sha384 };
  checkIdentity(identity);
  return identity;
}

/** Options of {@link createSealStream}. */
export interface SealOptions {
  /** An aggregated KMS client (with `generateDataKey`), the operator's. */
  readonly kms: KMS;
  /** The key's ARN (the Encryption SDK's keyring takes ARNs or alias ARNs). */
  readonly keyArn: string;
  readonly model: ModelIdentity;
  /** Exact plaintext size, when known (lets the SDK write a tighter final frame). */
  readonly plaintextLength?: number;
}

/**
 * A stream that turns the model's plaintext into a sealed artifact. The caller hashes the model
 * first (the digest is part of the context) and pipes the plaintext in.
 */
export function createSealStream(options: SealOptions): Duplex {
  // The SDK's client type predates exactOptionalPropertyTypes; the aggregated KMS client is what it calls.
  const clientProvider = (() => options.kms) as unknown as KmsClientSupplier;
  const keyring = new KmsKeyringNode({ generatorKeyId: options.keyArn, clientProvider });
  return encryptionSdk.encryptStream(keyring, {
    suiteId: SEALING_ALGORITHM_SUITE,
    encryptionContext: sealingContext(options.model),
    frameLength: SEALING_FRAME_BYTES,
    ...(options.plaintextLength === undefined ? {} : { plaintextLength: options.plaintextLength }),
  });
}

function checkIdentity(model: ModelIdentity): void {
  if (!MODEL_NAME_PATTERN.test(model.name)) {
    throw new ModelError(
      'ERR_ARTIFACT_INVALID',
      'a model name is 1–128 characters of letters, digits, ".", "_" and "-"',
    );
  }
  if (!/^[0-9a-f]{96}$/.test(model.sha384))
    throw new ModelError('ERR_ARTIFACT_INVALID', 'a model digest is 96 lowercase hex digits (SHA-384)');
}
