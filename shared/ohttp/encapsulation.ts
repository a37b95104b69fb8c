/**
 * Oblivious HTTP request and response encapsulation (RFC 9458 sections 4.3–4.4) on `@hpke/core`
 * (with node:crypto primitives underneath, node-primitives.ts):
 * DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, and AES-128-GCM, AES-256-GCM or ChaCha20-Poly1305.
 * The response key is plain RFC 5869 HKDF over `enc ‖ response_nonce` (node:crypto's hkdfSync —
 * `@hpke/core`'s extract refuses the 48-byte salt), and the response AEAD uses that nonce directly.
 * Every failure to open collapses to ERR_DECRYPT_FAILED (STYLE.md 4).
 */
import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';
import type { CipherGCMTypes, webcrypto } from 'node:crypto';
import { CipherSuite } from '@hpke/core';
import type { AeadId } from '@hpke/common';
import { OhttpError } from '../errors.ts';
import { HPKE_AEAD, HPKE_KDF, HPKE_KEM, X25519_PUBLIC_KEY_BYTES } from './key-config.ts';
import type { KeyConfig } from './key-config.ts';
import { NodeAead, NodeDhkemX25519HkdfSha256, NodeHkdfSha256 } from './node-primitives.ts';

/** `key_id(1) ‖ kem_id(2) ‖ kdf_id(2) ‖ aead_id(2)`. */
export const REQUEST_HEADER_BYTES = 7;
/** AEAD tag length of every supported AEAD. */
export const AEAD_TAG_BYTES = 16;
/** Largest encapsulated request or response handled (an inference body of 32 MiB and overhead). */
export const MAX_ENCAPSULATED_BYTES = 33 * 1024 * 1024;

type CryptoKey = webcrypto.CryptoKey;
type CryptoKeyPair = webcrypto.CryptoKeyPair;

const REQUEST_LABEL = new TextEncoder().encode('message/bhttp request');
const RESPONSE_LABEL = new TextEncoder().encode('message/bhttp response');

interface AeadSpec {
  readonly keyBytes: number;
  readonly nonceBytes: number;
  readonly nodeName: CipherGCMTypes | 'chacha20-poly1305';
}
const AEADS: ReadonlyMap<number, AeadSpec> = new Map([
  [HPKE_AEAD.AES_128_GCM, { keyBytes: 16, nonceBytes: 12, nodeName: 'aes-128-gcm' }],
  [HPKE_AEAD.AES_256_GCM, { keyBytes: 32, nonceBytes: 12, nodeName: 'aes-256-gcm' }],
  [HPKE_AEAD.CHACHA20_POLY1305, { keyBytes: 32, nonceBytes: 12, nodeName: 'chacha20-poly1305' }],
]);

const SUITES = new Map<number, CipherSuite>();

/** One suite per AEAD, on node:crypto primitives (see node-primitives.ts for why). */
function suiteFor(aeadId: number): CipherSuite {
  let suite = SUITES.get(aeadId);
  if (suite === undefined) {
    suite = new CipherSuite({
      kem: new NodeDhkemX25519HkdfSha256(),
      kdf: new NodeHkdfSha256(),
      aead: new NodeAead(aeadId as AeadId),
    });
    SUITES.set(aeadId, suite);
  }
  return suite;
}

function requestHeader(keyId: number, kdfId: number, aeadId: number): Uint8Array {
  const header = new Uint8Array(REQUEST_HEADER_BYTES);
  const view = new DataView(header.buffer);
  view.setUint8(0, keyId);
  view.setUint16(1, HPKE_KEM.DHKEM_X25519_HKDF_SHA256);
  view.setUint16(3, kdfId);
  view.setUint16(5, aeadId);
  return header;
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const bytes = new Uint8Array(parts.reduce((sum, part) => sum + part.byteLength, 0));
  let offset = 0;
  for (const part of parts) {
    bytes.set(part, offset);
    offset += part.byteLength;
  }
  return bytes;
}

function decryptFailed(): OhttpError {
  return new OhttpError('ERR_DECRYPT_FAILED', 'decryption failed');
}

/** RFC 9458 section 4.4: the response AEAD key and nonce. */
function responseKeys(aead: AeadSpec, secret: Uint8Array, enc: Uint8Array, responseNonce: Uint8Array) {
  const salt = concat(enc, responseNonce);
  return {
    key: new Uint8Array(hkdfSync('sha256', secret, salt, 'key', aead.keyBytes)),
    nonce: new Uint8Array(hkdfSync('sha256', secret, salt, 'nonce', aead.nonceBytes)),
  };
}

/** `prefix ‖ AEAD(plaintext) ‖ tag` written once into one buffer (a response: the nonce first). */
function seal(
  aead: AeadSpec,
  key: Uint8Array,
  nonce: Uint8Array,
  plaintext: Uint8Array,
  prefix: Uint8Array = new Uint8Array(0),
): Uint8Array {
  const cipher = createCipheriv(aead.nodeName as CipherGCMTypes, key, nonce, {
    authTagLength: AEAD_TAG_BYTES,
  });
  return concat(prefix, cipher.update(plaintext), cipher.final(), cipher.getAuthTag());
}

function open(aead: AeadSpec, key: Uint8Array, nonce: Uint8Array, sealed: Uint8Array): Uint8Array {
  if (sealed.byteLength < AEAD_TAG_BYTES) throw decryptFailed();
  try {
    const decipher = createDecipheriv(aead.nodeName as CipherGCMTypes, key, nonce, {
      authTagLength: AEAD_TAG_BYTES,
    });
    decipher.setAuthTag(sealed.subarray(sealed.byteLength - AEAD_TAG_BYTES));
    const head = decipher.update(sealed.subarray(0, sealed.byteLength - AEAD_TAG_BYTES));
    const tail = decipher.final();
    // GCM's final() is empty: the update's own output is the plaintext, no copy needed.
    return tail.byteLength === 0
      ? new Uint8Array(head.buffer, head.byteOffset, head.byteLength)
      : concat(head, tail);
  } catch {
    throw decryptFailed();
  }
}

/** What a client keeps to open the response to one request. */
export interface ResponseOpener {
  /** Opens an encapsulated response; ERR_DECRYPT_FAILED if it was not sealed for this request. */
  open(encapsulatedResponse: Uint8Array): Uint8Array;
}

/** Options of {@link encapsulateRequest}; the fixed key pair exists for the RFC's test vector. */
export interface EncapsulateOptions {
  /** The AEAD to use; the first supported one the key config offers otherwise. */
  readonly aeadId?: number;
  readonly ephemeralKeyPair?: CryptoKeyPair;
}

/** RFC 9458 section 4.3, client side: encapsulates `message` (Binary HTTP) to `config`. */
export async function encapsulateRequest(
  config: KeyConfig,
  message: Uint8Array,
  options: EncapsulateOptions = {},
): Promise<{ encapsulated: Uint8Array; opener: ResponseOpener }> {
  const choice =
    options.aeadId === undefined
      ? config.symmetricAlgorithms.find(
          (entry) => entry.kdfId === HPKE_KDF.HKDF_SHA256 && AEADS.has(entry.aeadId),
        )
      : config.symmetricAlgorithms.find(
          (entry) => entry.aeadId === options.aeadId && entry.kdfId === HPKE_KDF.HKDF_SHA256,
        );
  if (choice === undefined || config.kemId !== HPKE_KEM.DHKEM_X25519_HKDF_SHA256) {
    throw new OhttpError('ERR_OHTTP_KEY_UNKNOWN', 'the key config offers no supported cipher suite');
  }
  const aead = AEADS.get(choice.aeadId) as AeadSpec;
  const suite = suiteFor(choice.aeadId);
  const header = requestHeader(config.keyId, choice.kdfId, choice.aeadId);
  const sender = await suite.createSenderContext({
    recipientPublicKey: await suite.kem.deserializePublicKey(config.publicKey),
    info: concat(REQUEST_LABEL, Uint8Array.of(0), header),
    ...(options.ephemeralKeyPair === undefined ? {} : { ekm: options.ephemeralKeyPair }),
  });
  const enc = new Uint8Array(sender.enc);
  const ciphertext = new Uint8Array(await sender.seal(message));
  const secret = new Uint8Array(
    await sender.export(RESPONSE_LABEL, Math.max(aead.keyBytes, aead.nonceBytes)),
  );
  const nonceBytes = Math.max(aead.keyBytes, aead.nonceBytes);
  return {
    encapsulated: concat(header, enc, ciphertext),
    opener: {
      open(encapsulatedResponse) {
        if (
          encapsulatedResponse.byteLength < nonceBytes + AEAD_TAG_BYTES ||
          encapsulatedResponse.byteLength > MAX_ENCAPSULATED_BYTES
        ) {
          throw decryptFailed();
        }
        const responseNonce = encapsulatedResponse.subarray(0, nonceBytes);
        const { key, nonce } = responseKeys(aead, secret, enc, responseNonce);
        return open(aead, key, nonce, encapsulatedResponse.subarray(nonceBytes));
      },
    },
  };
}

/** A decapsulated request and the means to answer it. */
export interface DecapsulatedRequest {
  readonly message: Uint8Array;
  /**
   * The request's encapsulated key (`enc`, RFC 9458 section 4.3): public, and fresh for every
   * request a client makes, so it names the request for anti-replay (RFC 9458 section 6.5).
   */
  readonly enc: Uint8Array;
  /**
   * Seals a response to this request (RFC 9458 section 4.4) with a fresh random nonce;
   * `responseNonce` is for reproducing the RFC's test vector only.
   */
  respond(message: Uint8Array, responseNonce?: Uint8Array): Uint8Array;
}

/** The gateway side: holds the private key of one key config. */
export class OhttpGateway {
  readonly #keyId: number;
  readonly #offered: ReadonlySet<string>;
  readonly #privateKeys: Map<number, CryptoKey>;

  private constructor(keyId: number, offered: ReadonlySet<string>, privateKeys: Map<number, CryptoKey>) {
    this.#keyId = keyId;
    this.#offered = offered;
    this.#privateKeys = privateKeys;
  }

  /** `privateKey` is the raw 32-byte X25519 secret; the caller wipes its copy afterwards. */
  static async create(config: KeyConfig, privateKey: Uint8Array): Promise<OhttpGateway> {
    const privateKeys = new Map<number, CryptoKey>();
    for (const { aeadId } of config.symmetricAlgorithms) {
      if (AEADS.has(aeadId) && !privateKeys.has(aeadId)) {
        privateKeys.set(aeadId, await suiteFor(aeadId).kem.deserializePrivateKey(privateKey));
      }
    }
    const offered = new Set(config.symmetricAlgorithms.map(({ kdfId, aeadId }) => `${kdfId}/${aeadId}`));
    return new OhttpGateway(config.keyId, offered, privateKeys);
  }

  /**
   * Decapsulates a request. A wrong key id or suite is ERR_OHTTP_KEY_UNKNOWN (the client should
   * re-attest); a short request ERR_OHTTP_MALFORMED; anything that does not open ERR_DECRYPT_FAILED.
   */
  async decapsulate(encapsulated: Uint8Array): Promise<DecapsulatedRequest> {
    if (encapsulated.byteLength > MAX_ENCAPSULATED_BYTES)
      throw new OhttpError('ERR_OHTTP_MALFORMED', 'request too large');
    if (encapsulated.byteLength < REQUEST_HEADER_BYTES + X25519_PUBLIC_KEY_BYTES + AEAD_TAG_BYTES) {
      throw new OhttpError('ERR_OHTTP_MALFORMED', 'request too short');
    }
    // A snapshot in a buffer of our own: the caller may hold a view into a larger pool (a Node
    // Buffer from a socket, whose `slice()` shares memory), and its bytes must not change under us.
    const bytes = new Uint8Array(encapsulated);
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const keyId = view.getUint8(0);
    const kemId = view.getUint16(1);
    const kdfId = view.getUint16(3);
    const aeadId = view.getUint16(5);
    const privateKey = this.#privateKeys.get(aeadId);
    if (
      keyId !== this.#keyId ||
      kemId !== HPKE_KEM.DHKEM_X25519_HKDF_SHA256 ||
      !this.#offered.has(`${kdfId}/${aeadId}`) ||
      privateKey === undefined
    ) {
      throw new OhttpError('ERR_OHTTP_KEY_UNKNOWN', 'the request is not for this gateway’s key config');
    }
    const aead = AEADS.get(aeadId) as AeadSpec;
    const header = bytes.subarray(0, REQUEST_HEADER_BYTES);
    const enc = bytes.slice(REQUEST_HEADER_BYTES, REQUEST_HEADER_BYTES + X25519_PUBLIC_KEY_BYTES);
    const suite = suiteFor(aeadId);
    let message: Uint8Array;
    let secret: Uint8Array;
    try {
      const recipient = await suite.createRecipientContext({
        recipientKey: privateKey,
        enc,
        info: concat(REQUEST_LABEL, Uint8Array.of(0), header),
      });
      message = new Uint8Array(
        await recipient.open(bytes.subarray(REQUEST_HEADER_BYTES + X25519_PUBLIC_KEY_BYTES)),
      );
      secret = new Uint8Array(
        await recipient.export(RESPONSE_LABEL, Math.max(aead.keyBytes, aead.nonceBytes)),
      );
    } catch {
      throw decryptFailed();
    }
    const nonceBytes = Math.max(aead.keyBytes, aead.nonceBytes);
    return {
      message,
      enc: enc.slice(),
      respond(response, responseNonce = new Uint8Array(randomBytes(nonceBytes))) {
        if (responseNonce.byteLength !== nonceBytes) throw new RangeError('wrong response nonce length');
        const { key, nonce } = responseKeys(aead, secret, enc, responseNonce);
        return seal(aead, key, nonce, response, responseNonce);
      },
    };
  }
}
