/**
 * The cluster key exchange between two enclaves, relayed by untrusted parents (docs/protocols.md
 * "Cluster key"; the design of brave/nitriding-daemon's key sync). Each side verifies the other's
 * NSM document with the shared verifier against its own pinned roots, requires PCR0/1/2 (and PCR8
 * when present) equal to its own — read from its own verified start-up document, so no
 * configuration can loosen it — and a nonce it issued for this exchange, used once. The key moves
 * HPKE-sealed to an X25519 key that only the requesting enclave holds and that its document binds.
 *
 *   holder                         requester
 *   challenge() → c
 *                                  request(c) → doc_R{nonce c, user_data {exchangeKey, requestNonce}}
 *   share(doc_R) → doc_H{nonce requestNonce, user_data {keyConfig, SHA-256(enc‖ct)}}, enc, ct
 *                                  accept(doc_H, enc, ct) → installed
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { webcrypto } from 'node:crypto';
import { CipherSuite } from '@hpke/core';
import { AeadId } from '@hpke/common';
import { verifyAttestation } from '../../shared/attestation/index.ts';
import type { VerifiedAttestation } from '../../shared/attestation/index.ts';
import { ClusterError, isNitroInferError } from '../../shared/errors.ts';
import { NodeAead, NodeDhkemX25519HkdfSha256, NodeHkdfSha256 } from '../../shared/ohttp/node-primitives.ts';
import type { Nsm } from '../nsm/index.ts';
import type { ClusterKeyStatus, ClusterKeyring } from './cluster-keyring.ts';
import {
  decodeRequestBinding,
  decodeResponseBinding,
  decodeSharedKey,
  encodeRequestBinding,
  encodeResponseBinding,
  encodeSharedKey,
} from './exchange-messages.ts';
import { CLUSTER_NONCE_BYTES, NonceStore } from './nonce-store.ts';

/** A challenge or request nonce lives this long: one relay round trip between parents, with margin. */
export const CLUSTER_NONCE_TTL_MS = 60_000;

/** A peer document older than this is refused (its nonce would have expired anyway). */
export const PEER_DOCUMENT_MAX_AGE_MS = 60_000;

/** Outstanding challenges a holder keeps; beyond, new ones are refused, never evicted. */
export const MAX_OUTSTANDING_CHALLENGES = 32;

/** Outstanding requests (each holds an exchange private key) a requester keeps. */
export const MAX_OUTSTANDING_REQUESTS = 8;

/** The sealed payload is ~80 bytes; enc is an X25519 public key. */
export const MAX_SEALED_KEY_BYTES = 256;
export const EXCHANGE_ENC_BYTES = 32;

/** PCRs a peer must share: the image (0), kernel (1), application (2), signing certificate (8). */
const COMPARED_PCRS = [0, 1, 2, 8] as const;

const INFO_LABEL = new TextEncoder().encode('nitro-infer cluster key v1');

const suite = new CipherSuite({
  kem: new NodeDhkemX25519HkdfSha256(),
  kdf: new NodeHkdfSha256(),
  aead: new NodeAead(AeadId.Aes256Gcm),
});

interface PendingRequest {
  readonly privateKey: webcrypto.CryptoKey;
  documentHash: Uint8Array | undefined;
}

/** Options of {@link ClusterExchange}. */
export interface ClusterExchangeOptions {
  readonly nsm: Nsm;
  readonly roots: readonly Uint8Array[];
  /** This enclave's own start-up document, already verified: its PCRs are what peers must carry. */
  readonly self: VerifiedAttestation;
  readonly keyring: ClusterKeyring;
  readonly clock?: () => number;
}

/** A holder's answer: its document and the sealed key. */
export interface SharedKeyMessage {
  readonly document: Uint8Array;
  readonly enc: Uint8Array;
  readonly ciphertext: Uint8Array;
}

export class ClusterExchange {
  readonly #options: ClusterExchangeOptions;
  readonly #clock: () => number;
  readonly #ownPcrs: ReadonlyMap<number, Uint8Array>;
  readonly #challenges: NonceStore<true>;
  readonly #requests: NonceStore<PendingRequest>;

  constructor(options: ClusterExchangeOptions) {
    this.#options = options;
    this.#clock = options.clock ?? Date.now;
    const own = new Map<number, Uint8Array>();
    for (const index of COMPARED_PCRS) {
      const value = options.self.document.pcrs.get(index);
      if (value !== undefined) own.set(index, value);
    }
    this.#ownPcrs = own;
    this.#challenges = new NonceStore({
      capacity: MAX_OUTSTANDING_CHALLENGES,
      ttlMs: CLUSTER_NONCE_TTL_MS,
      clock: this.#clock,
    });
    this.#requests = new NonceStore({
      capacity: MAX_OUTSTANDING_REQUESTS,
      ttlMs: CLUSTER_NONCE_TTL_MS,
      clock: this.#clock,
      release: wipe,
    });
  }

  /** Holder, step 1: a fresh single-use challenge for a requester's document. */
  challenge(): Uint8Array {
    return this.#challenges.issue(true);
  }

  /** Requester, step 2: a document over the holder's challenge binding a fresh exchange key and request nonce. */
  async request(challenge: Uint8Array): Promise<Uint8Array> {
    if (challenge.byteLength !== CLUSTER_NONCE_BYTES) {
      throw new ClusterError('ERR_CLUSTER_CHALLENGE_UNKNOWN', `a challenge is ${CLUSTER_NONCE_BYTES} bytes`);
    }
    const pair = await suite.kem.generateKeyPair();
    const pending: PendingRequest = { privateKey: pair.privateKey, documentHash: undefined };
    const requestNonce = this.#requests.issue(pending);
    try {
      const exchangeKey = new Uint8Array(await suite.kem.serializePublicKey(pair.publicKey));
      const document = await this.#options.nsm.attest({
        nonce: challenge,
        userData: encodeRequestBinding({ exchangeKey, requestNonce }),
      });
      pending.documentHash = sha256(document);
      return document;
    } catch (error) {
      wipe(this.#requests.consume(requestNonce));
      throw error;
    }
  }

  /** Holder, step 3: verifies a requester's document and seals the cluster key to the key it binds. */
  async share(requestDocument: Uint8Array): Promise<SharedKeyMessage> {
    const verified = this.#verifyPeer(requestDocument);
    this.#challenges.consume(verified.document.nonce);
    const binding = decodeRequestBinding(verified.document.userData);
    const key = this.#options.keyring.sharable();
    const plaintext = encodeSharedKey(key);
    key.secret.fill(0);
    try {
      const sender = await suite.createSenderContext({
        recipientPublicKey: await suite.kem.deserializePublicKey(binding.exchangeKey),
        info: concat(INFO_LABEL, sha256(requestDocument)),
      });
      const ciphertext = new Uint8Array(await sender.seal(plaintext));
      const enc = new Uint8Array(sender.enc);
      const document = await this.#options.nsm.attest({
        nonce: binding.requestNonce,
        userData: encodeResponseBinding({
          keyConfig: key.keyConfig,
          sealedDigest: sha256(concat(enc, ciphertext)),
        }),
      });
      return { document, enc, ciphertext };
    } finally {
      plaintext.fill(0);
    }
  }

  /** Requester, step 4: verifies the holder's document, opens the key, checks its binding, installs it. */
  async accept(message: SharedKeyMessage): Promise<ClusterKeyStatus> {
    const verified = this.#verifyPeer(message.document);
    const pending = this.#requests.consume(verified.document.nonce);
    try {
      const binding = decodeResponseBinding(verified.document.userData);
      const digest = sha256(concat(message.enc, message.ciphertext));
      if (!timingSafeEqual(digest, binding.sealedDigest)) {
        throw new ClusterError(
          'ERR_CLUSTER_BINDING_MISMATCH',
          'the sealed key is not the one the holder document binds',
        );
      }
      // The HPKE info binds the request document; without its hash there is nothing to bind.
      const documentHash = pending.documentHash;
      if (documentHash === undefined) {
        throw new ClusterError(
          'ERR_CLUSTER_BINDING_MISMATCH',
          'no request document is pending for this answer',
        );
      }
      let plaintext: Uint8Array;
      try {
        const recipient = await suite.createRecipientContext({
          recipientKey: pending.privateKey,
          enc: message.enc,
          info: concat(INFO_LABEL, documentHash),
        });
        plaintext = new Uint8Array(await recipient.open(message.ciphertext));
      } catch {
        throw new ClusterError('ERR_DECRYPT_FAILED', 'decryption failed');
      }
      try {
        const shared = decodeSharedKey(plaintext);
        try {
          return await this.#options.keyring.install(shared, binding.keyConfig);
        } finally {
          shared.secret.fill(0);
        }
      } finally {
        plaintext.fill(0);
      }
    } finally {
      wipe(pending);
    }
  }

  /** Verifies a peer's document fully; any failure is ERR_CLUSTER_PEER_UNTRUSTED naming the check. */
  #verifyPeer(document: Uint8Array): VerifiedAttestation {
    try {
      return verifyAttestation(document, {
        roots: this.#options.roots,
        expectedPcrs: this.#ownPcrs,
        allowDebug: false,
        maxAgeMs: PEER_DOCUMENT_MAX_AGE_MS,
        at: this.#clock(),
      });
    } catch (error) {
      const code = isNitroInferError(error) ? error.code : 'ERR_INTERNAL';
      throw new ClusterError('ERR_CLUSTER_PEER_UNTRUSTED', `the peer's document is refused (${code})`, {
        cause: error,
      });
    }
  }
}

function sha256(bytes: Uint8Array): Uint8Array {
  return new Uint8Array(createHash('sha256').update(bytes).digest());
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.byteLength + b.byteLength);
  out.set(a);
  out.set(b, a.byteLength);
  return out;
}

/** Best effort: hpke-js keeps an X25519 private key's raw bytes in `key`. */
function wipe(pending: PendingRequest): void {
  const raw = (pending.privateKey as unknown as { key?: unknown }).key;
  if (raw instanceof Uint8Array) raw.fill(0);
}
