/**
 * Oblivious HTTP request and response encapsulation (RFC 9458 sections 4.3–4.4) on `@hpke/core`
 * (with node:crypto primitives underneath, node-primitives.ts):
 * DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, and AES-128-GCM, AES-256-GCM or ChaCha20-Poly1305.
 * The response key is plain RFC 5869 HKDF over `enc ‖ response_nonce` (one extract and two
 * one-block expands here — `@hpke/core`'s extract refuses the 48-byte salt), and the response AEAD
 * uses that nonce directly. Every failure to open collapses to ERR_DECRYPT_FAILED (STYLE.md 4).
 *
 * Large bodies are written once: an encapsulated request or response is one buffer, the header
 * (or nonce) then the AEAD output, and a response's Binary HTTP parts are encrypted from where
 * they lie into it, its zero padding from a shared block of zeros, so the plaintext response is
 * never assembled. A decapsulated request's message is one buffer of its own, which Binary HTTP
 * decoding views (binary tensors point into it, and it moves to a worker whole).
 */
import { randomFillSync } from 'node:crypto';
import type { CipherGCMTypes, webcrypto } from 'node:crypto';
import { CipherSuite } from '@hpke/core';
import type { AeadId } from '@hpke/common';
import { OhttpError } from '../errors.ts';
import { HPKE_AEAD, HPKE_KDF, HPKE_KEM, X25519_PUBLIC_KEY_BYTES } from './key-config.ts';
import type { KeyConfig } from './key-config.ts';
import type { MessageParts } from './bhttp.ts';
import {
  NodeAead,
  NodeDhkemX25519HkdfSha256,
  NodeHkdfSha256,
  expandOneBlock,
  hmacSha256,
  openOwned,
  sealInto,
} from './node-primitives.ts';

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
const KEY_LABEL = new TextEncoder().encode('key');
const NONCE_LABEL = new TextEncoder().encode('nonce');
/** Read-only zeros the response padding is encrypted from (never handed out). */
const ZEROS = new Uint8Array(64 * 1024);

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

/**
 * RFC 9458 section 4.4: the response AEAD key and nonce, HKDF-SHA256 with salt
 * `enc ‖ response_nonce`: one extract, then one HMAC block each (Nk and Nn are at most 32).
 */
function responseKeys(aead: AeadSpec, secret: Uint8Array, enc: Uint8Array, responseNonce: Uint8Array) {
  const prk = hmacSha256(concat(enc, responseNonce), secret);
  return {
    key: expandOneBlock(prk, KEY_LABEL, aead.keyBytes),
    nonce: expandOneBlock(prk, NONCE_LABEL, aead.nonceBytes),
  };
}

/** A message as pieces to encrypt in order: its parts, then its zero padding. */
function plaintextPieces(message: Uint8Array | MessageParts): readonly Uint8Array[] {
  if (message instanceof Uint8Array) return [message];
  const pieces = [...message.parts];
  for (let left = message.paddingBytes; left > 0; left -= ZEROS.byteLength)
    pieces.push(ZEROS.subarray(0, Math.min(left, ZEROS.byteLength)));
  return pieces;
}

/** A recipient public key by its bytes, deserialized once (and so imported into OpenSSL once). */
const RECIPIENT_KEYS_MAX = 16;
const recipientKeys = new Map<string, CryptoKey>();

async function recipientKey(suite: CipherSuite, publicKey: Uint8Array): Promise<CryptoKey> {
  const name = Buffer.from(publicKey.buffer, publicKey.byteOffset, publicKey.byteLength).toString('base64');
  const known = recipientKeys.get(name);
  if (known !== undefined) return known;
  const key = await suite.kem.deserializePublicKey(publicKey);
  if (recipientKeys.size >= RECIPIENT_KEYS_MAX) recipientKeys.clear();
  recipientKeys.set(name, key);
  return key;
}

/** What a client keeps to open the response to one request. */
export interface ResponseOpener {
  /**
   * Opens an encapsulated response into a buffer of its own; ERR_DECRYPT_FAILED if it was not
   * sealed for this request.
   */
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
    recipientPublicKey: await recipientKey(suite, config.publicKey),
    info: concat(REQUEST_LABEL, Uint8Array.of(0), header),
    ...(options.ephemeralKeyPair === undefined ? {} : { ekm: options.ephemeralKeyPair }),
  });
  const enc = new Uint8Array(sender.enc);
  // An ArrayBuffer goes through hpke-js as it is (a view would be copied first).
  const ownsBuffer = message.byteOffset === 0 && message.buffer.byteLength === message.byteLength;
  const ciphertext = new Uint8Array(
    await sender.seal(ownsBuffer ? (message.buffer as ArrayBuffer) : message),
  );
  const secret = new Uint8Array(
    await sender.export(RESPONSE_LABEL, Math.max(aead.keyBytes, aead.nonceBytes)),
  );
  const nonceBytes = Math.max(aead.keyBytes, aead.nonceBytes);
  // hpke-js hands back the AEAD's one buffer (ciphertext ‖ tag); it is copied once, after the header.
  const encapsulated = new Uint8Array(REQUEST_HEADER_BYTES + enc.byteLength + ciphertext.byteLength);
  encapsulated.set(header, 0);
  encapsulated.set(enc, REQUEST_HEADER_BYTES);
  encapsulated.set(ciphertext, REQUEST_HEADER_BYTES + enc.byteLength);
  return {
    encapsulated,
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
        try {
          return openOwned(aead.nodeName, key, nonce, encapsulatedResponse.subarray(nonceBytes));
        } catch {
          throw decryptFailed();
        }
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
   * Seals a response to this request (RFC 9458 section 4.4) with a fresh random nonce, from one
   * buffer or from a Binary HTTP message's parts and padding (encodeBhttpResponseParts), written
   * once into the encapsulated response; `responseNonce` is for reproducing the RFC's test vector only.
   */
  respond(message: Uint8Array | MessageParts, responseNonce?: Uint8Array): Uint8Array;
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
    // Everything is read or copied before the first await: the caller may hold a view into a
    // larger pool (a Node Buffer from a socket, whose `slice()` shares memory), and its bytes must
    // not change under us. The ciphertext's copy is the snapshot, in an ArrayBuffer of its own
    // that hpke-js takes as it is.
    const bytes = encapsulated;
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
    const info = concat(REQUEST_LABEL, Uint8Array.of(0), bytes.subarray(0, REQUEST_HEADER_BYTES));
    const enc = new Uint8Array(X25519_PUBLIC_KEY_BYTES);
    enc.set(bytes.subarray(REQUEST_HEADER_BYTES, REQUEST_HEADER_BYTES + X25519_PUBLIC_KEY_BYTES));
    const sealed = new Uint8Array(bytes.byteLength - REQUEST_HEADER_BYTES - X25519_PUBLIC_KEY_BYTES);
    sealed.set(bytes.subarray(REQUEST_HEADER_BYTES + X25519_PUBLIC_KEY_BYTES));
    const suite = suiteFor(aeadId);
    let message: Uint8Array;
    let secret: Uint8Array;
    try {
      // ArrayBuffers, which hpke-js takes as they are (views it copies first).
      const recipient = await suite.createRecipientContext({
        recipientKey: privateKey,
        enc: enc.buffer,
        info: info.buffer as ArrayBuffer,
      });
      // The AEAD's output buffer itself: exactly the message, owned by it alone.
      message = new Uint8Array(await recipient.open(sealed.buffer));
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
      respond(response, responseNonce = randomFillSync(new Uint8Array(nonceBytes))) {
        if (responseNonce.byteLength !== nonceBytes) throw new RangeError('wrong response nonce length');
        const { key, nonce } = responseKeys(aead, secret, enc, responseNonce);
        const encapsulatedResponse = sealInto(
          aead.nodeName,
          key,
          nonce,
          plaintextPieces(response),
          nonceBytes,
        );
        encapsulatedResponse.set(responseNonce, 0);
        return encapsulatedResponse;
      },
    };
  }
}
