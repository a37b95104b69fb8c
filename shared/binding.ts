/**
 * What an enclave's attestation binds in `user_data` (DESIGN.md 4.3): a deterministic CBOR map
 * `{ v: 1, ohttp: <key config>, receipts: <receipt public key>, models: SHA-384(sorted (name, digest) list) }`,
 * at most 1024 bytes. A client that verified the document checks the served key config, receipt key
 * and model list against it.
 */
import { createHash } from 'node:crypto';
import { encodeDeterministicCbor } from './cbor.ts';

/** The NSM accepts at most 1024 bytes of `user_data`. */
export const MAX_USER_DATA_BYTES = 1024;

/** A loaded model as attestations name it. */
export interface ModelIdentity {
  readonly name: string;
  /** SHA-384 of the plaintext model, hex. */
  readonly sha384: string;
}

/** The parts of the binding. */
export interface AttestationBinding {
  readonly ohttpKeyConfig: Uint8Array;
  readonly receiptPublicKey: Uint8Array;
  readonly models: readonly ModelIdentity[];
}

/** SHA-384 over the deterministic CBOR of the (name, digest) list sorted by name. */
export function modelListDigest(models: readonly ModelIdentity[]): Uint8Array {
  const sorted = [...models]
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
    .map((model) => [model.name, model.sha384]);
  return new Uint8Array(createHash('sha384').update(encodeDeterministicCbor(sorted)).digest());
}

/**
 * Encodes the binding for `user_data`.
 * @throws RangeError when it would exceed {@link MAX_USER_DATA_BYTES} (a key config that large is a bug).
 */
export function encodeUserData(binding: AttestationBinding): Uint8Array {
  const bytes = encodeDeterministicCbor(
    new Map<string, unknown>([
      ['v', 1],
      ['ohttp', binding.ohttpKeyConfig],
      ['receipts', binding.receiptPublicKey],
      ['models', modelListDigest(binding.models)],
    ]),
  );
  if (bytes.byteLength > MAX_USER_DATA_BYTES)
    throw new RangeError(`user_data of ${bytes.byteLength} bytes exceeds ${MAX_USER_DATA_BYTES}`);
  return bytes;
}
