/**
 * What the SDK accepts as an attestation: a document that passes every check of the policy, and a
 * key config, receipt key and model list served beside it that are exactly what its `user_data`
 * binds. Nothing from the reply is read before the document has verified.
 */
import { verifyAttestation } from '../shared/attestation/index.ts';
import { decodeUserData, modelListDigest } from '../shared/binding.ts';
import type { ModelIdentity } from '../shared/binding.ts';
import { ClientError } from '../shared/errors.ts';
import { decodeKeyConfig } from '../shared/ohttp/key-config.ts';
import type { KeyConfig } from '../shared/ohttp/key-config.ts';
import type { ResolvedPolicy } from './policy.ts';

/** A verified attestation, as the client keeps it. */
export interface Attestation {
  readonly document: Uint8Array;
  readonly keyConfig: KeyConfig;
  readonly keyConfigBytes: Uint8Array;
  readonly receiptKey: Uint8Array;
  readonly models: readonly ModelIdentity[];
  readonly pcrs: ReadonlyMap<number, Uint8Array>;
  readonly moduleId: string;
  /** When the client verified it (ms). */
  readonly verifiedAt: number;
}

/**
 * Verifies a `GET /v1/attestation` reply fetched with `nonce`.
 * @throws {AttestationError} from the verifier; {ClientError} `ERR_CLIENT_BINDING_MISMATCH`.
 */
export function acceptAttestation(
  reply: Record<string, unknown>,
  nonce: Uint8Array,
  policy: ResolvedPolicy,
  now: number,
): Attestation {
  const field = (name: string) => {
    const value = reply[name];
    if (typeof value !== 'string')
      throw new ClientError('ERR_CLIENT_BINDING_MISMATCH', `the attestation reply has no ${name}`);
    return new Uint8Array(Buffer.from(value, 'base64'));
  };
  const document = field('document');
  const verified = verifyAttestation(document, {
    roots: policy.roots,
    at: now,
    expectedPcrs: policy.expectedPcrs,
    nonce,
    maxAgeMs: policy.maxAgeMs,
    allowDebug: policy.allowDebug,
  });
  // Only now is anything from the reply read; every part must be what the signed document binds.
  const userData = verified.document.userData;
  if (userData === undefined)
    throw new ClientError('ERR_CLIENT_BINDING_MISMATCH', 'the document binds no user_data');
  const binding = decodeUserData(userData);
  const keyConfigBytes = field('keyConfig');
  const receiptKey = field('receiptKey');
  const models = parseModels(reply.models);
  const same = (a: Uint8Array, b: Uint8Array) => Buffer.from(a).equals(Buffer.from(b));
  if (!same(keyConfigBytes, binding.ohttpKeyConfig)) {
    throw new ClientError(
      'ERR_CLIENT_BINDING_MISMATCH',
      'the served key config is not the one the document binds',
    );
  }
  if (!same(receiptKey, binding.receiptPublicKey)) {
    throw new ClientError(
      'ERR_CLIENT_BINDING_MISMATCH',
      'the served receipt key is not the one the document binds',
    );
  }
  if (!same(modelListDigest(models), binding.modelsDigest)) {
    throw new ClientError(
      'ERR_CLIENT_BINDING_MISMATCH',
      'the served model list is not the one the document binds',
    );
  }
  return {
    document,
    keyConfig: decodeKeyConfig(keyConfigBytes),
    keyConfigBytes,
    receiptKey,
    models,
    pcrs: verified.document.pcrs,
    moduleId: verified.document.moduleId,
    verifiedAt: now,
  };
}

function parseModels(value: unknown): ModelIdentity[] {
  if (!Array.isArray(value) || value.length > 1024)
    throw new ClientError('ERR_CLIENT_BINDING_MISMATCH', 'the model list is missing');
  return value.map((entry: unknown) => {
    const { name, sha384 } = (entry ?? {}) as { name?: unknown; sha384?: unknown };
    if (typeof name !== 'string' || typeof sha384 !== 'string') {
      throw new ClientError('ERR_CLIENT_BINDING_MISMATCH', 'a model list entry is malformed');
    }
    return { name, sha384 };
  });
}
