/**
 * The JSON shapes parents exchange on their cluster listeners (docs/protocols.md "Cluster key"),
 * and their readers. Every field is public or sealed: status facts, random challenges, NSM
 * documents and HPKE ciphertext to a key only the requesting enclave holds. Nothing here is
 * trusted: each side's enclave verifies what matters, and the readers only bound and shape it.
 */
import { Type } from '@fastify/type-provider-typebox';
import type { Static } from '@fastify/type-provider-typebox';
import type { ClusterKeyFacts } from '../../shared/cluster-preference.ts';
import { ClusterError } from '../../shared/errors.ts';
import type { LinkFields } from '../link/enclave-link.ts';

/**
 * An NSM document's bound, as the verifier's `MAX_PEER_DOCUMENT_BYTES` (16 KiB; the
 * parent does not import the verifier): a larger one could never verify, so it is never relayed.
 */
export const MAX_PEER_DOCUMENT_BYTES = 16 * 1024;

/** Base64 of `bytes` bytes, rounded up to whole quads. */
const base64 = (bytes: number) =>
  Type.String({ maxLength: Math.ceil(bytes / 3) * 4, pattern: '^[A-Za-z0-9+/=]*$' });

/** A document (≤ 16 KiB), base64 in JSON, plus the small fields: the largest body is ~22 KiB. */
export const PEER_BODY_LIMIT_BYTES = 32 * 1024;

export const StatusReply = Type.Object(
  {
    epoch: Type.Integer({ minimum: 1 }),
    createdAt: Type.Integer({ minimum: 0 }),
    fingerprint: base64(32),
    keyConfig: base64(512),
  },
  { additionalProperties: false },
);
export type StatusReply = Static<typeof StatusReply>;

export const ChallengeReply = Type.Object({ challenge: base64(32) }, { additionalProperties: false });

export const ShareBody = Type.Object(
  { document: base64(MAX_PEER_DOCUMENT_BYTES) },
  { additionalProperties: false },
);

export const ShareReply = Type.Object(
  {
    document: base64(MAX_PEER_DOCUMENT_BYTES),
    enc: base64(32),
    ciphertext: base64(256),
  },
  { additionalProperties: false },
);
export type ShareReply = Static<typeof ShareReply>;

/** The enclave's `cluster.status` fields as JSON. */
export function statusReply(fields: LinkFields): StatusReply {
  const facts = statusFacts(fields);
  return {
    epoch: facts.epoch,
    createdAt: facts.createdAt,
    fingerprint: Buffer.from(facts.fingerprint).toString('base64'),
    keyConfig: Buffer.from(bytes(fields.get('keyConfig'), 'keyConfig', 512)).toString('base64'),
  };
}

/** Reads `cluster.status` fields (from the local enclave) as facts. */
export function statusFacts(fields: LinkFields): ClusterKeyFacts {
  const epoch = fields.get('epoch');
  const createdAt = fields.get('createdAt');
  if (!Number.isSafeInteger(epoch) || !Number.isSafeInteger(createdAt)) throw invalid('cluster status');
  return {
    epoch: epoch as number,
    createdAt: createdAt as number,
    fingerprint: bytes(fields.get('fingerprint'), 'fingerprint', 32),
  };
}

/**
 * Reads a peer parent's status JSON as facts. A peer may lie here; the worst it gets is an
 * exchange attempt that its enclave cannot complete with a key the local enclave prefers less.
 * @throws {ClusterError} `ERR_CLUSTER_PEER_UNAVAILABLE`.
 */
export function peerStatusFacts(json: unknown): ClusterKeyFacts {
  const value = json as Partial<StatusReply> | null;
  if (
    typeof value !== 'object' ||
    value === null ||
    !Number.isSafeInteger(value.epoch) ||
    (value.epoch as number) < 1 ||
    !Number.isSafeInteger(value.createdAt) ||
    typeof value.fingerprint !== 'string'
  ) {
    throw invalid('peer status');
  }
  const fingerprint = Buffer.from(value.fingerprint, 'base64');
  if (fingerprint.byteLength !== 32) throw invalid('peer status');
  return { epoch: value.epoch as number, createdAt: value.createdAt as number, fingerprint };
}

/** A base64 field of a peer's JSON reply as bytes, bounded. */
export function peerBytes(json: unknown, name: string, max: number): Uint8Array {
  const value = (json as Record<string, unknown> | null)?.[name];
  if (typeof value !== 'string' || value.length > Math.ceil(max / 3) * 4) throw invalid(`peer ${name}`);
  return new Uint8Array(Buffer.from(value, 'base64'));
}

function bytes(value: unknown, name: string, max: number): Uint8Array {
  if (!(value instanceof Uint8Array) || value.byteLength > max) throw invalid(name);
  return value;
}

function invalid(what: string): ClusterError {
  return new ClusterError('ERR_CLUSTER_PEER_UNAVAILABLE', `${what} is malformed`);
}
