/**
 * HPKE primitives for `@hpke/core` backed by node:crypto. hpke-js runs every X25519, HMAC and AEAD
 * operation through WebCrypto, whose calls are asynchronous thread-pool round trips in Node: one
 * request encapsulation measured 2.5 ms here, the response 1.8 ms. hpke-js is built for this: its
 * `Dhkem` takes any curve object (as `@hpke/dhkem-x25519` passes noble's), its `CipherSuite` any
 * KDF and AEAD. The HPKE protocol — key schedule, labels, encap/decap, contexts, sequence numbers —
 * stays hpke-js's; only the primitives underneath are Node's synchronous OpenSSL calls. The RFC 9458
 * vector tests run against this suite.
 */
import {
  createCipheriv,
  createDecipheriv,
  createHmac,
  createPrivateKey,
  createPublicKey,
  diffieHellman,
  randomBytes,
} from 'node:crypto';
import type { CipherGCMTypes, KeyObject } from 'node:crypto';
import { AeadId, Dhkem, HkdfSha256Native, KemId, XCurveDhkemPrimitives } from '@hpke/common';
import type { AeadEncryptionContext, AeadInterface } from '@hpke/common';

type Bytes = ArrayBufferLike | ArrayBufferView;

function bytes(input: Bytes): Uint8Array {
  return ArrayBuffer.isView(input)
    ? new Uint8Array(input.buffer, input.byteOffset, input.byteLength)
    : new Uint8Array(input);
}

function arrayBuffer(input: Uint8Array): ArrayBuffer {
  return input.buffer.slice(input.byteOffset, input.byteOffset + input.byteLength) as ArrayBuffer;
}

/**
 * The AEAD output as one ArrayBuffer with as few copies as the parts allow: OpenSSL's output
 * buffer itself when it is the whole answer (a GCM open: `final()` is empty), else one copy of the
 * parts into a fresh buffer — not a concatenation and then a slice of it (two copies of a request's
 * plaintext, which for tensors is most of the request).
 */
function joined(parts: readonly Buffer[]): ArrayBuffer {
  const nonEmpty = parts.filter((part) => part.byteLength > 0);
  const only = nonEmpty.length === 1 ? nonEmpty[0] : undefined;
  if (only !== undefined && only.byteOffset === 0 && only.buffer.byteLength === only.byteLength)
    return only.buffer as ArrayBuffer;
  const total = parts.reduce((sum, part) => sum + part.byteLength, 0);
  const out = new Uint8Array(total);
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.byteLength;
  }
  return out.buffer;
}

/** HKDF-SHA256 (RFC 5869) with synchronous HMACs; the labeled forms come from hpke-js. */
export class NodeHkdfSha256 extends HkdfSha256Native {
  override async extract(salt: Bytes, ikm: Bytes): Promise<ArrayBuffer> {
    const key = bytes(salt).byteLength === 0 ? new Uint8Array(32) : bytes(salt);
    return arrayBuffer(createHmac('sha256', key).update(bytes(ikm)).digest());
  }

  override async expand(prk: Bytes, info: Bytes, length: number): Promise<ArrayBuffer> {
    if (length > 255 * 32) throw new Error('Entropy limit reached');
    const output = new Uint8Array(length);
    let previous = new Uint8Array(0);
    for (let counter = 1, offset = 0; offset < length; counter++) {
      previous = createHmac('sha256', bytes(prk))
        .update(previous)
        .update(bytes(info))
        .update(Uint8Array.of(counter))
        .digest();
      output.set(previous.subarray(0, Math.min(previous.byteLength, length - offset)), offset);
      offset += previous.byteLength;
    }
    return arrayBuffer(output);
  }

  override async extractAndExpand(
    salt: Bytes,
    ikm: Bytes,
    info: Bytes,
    length: number,
  ): Promise<ArrayBuffer> {
    return this.expand(await this.extract(salt, ikm), info, length);
  }
}

/*
 * Ephemeral keys are random bytes imported as a JWK private key (EVP_PKEY_new_raw_private_key:
 * ~50 µs with the public key's export), never `generateKeyPairSync('x25519')`: on Node 20.20 a
 * loop of generateKeyPairSync followed by a JWK export deadlocks the process after ~10^5 keys (a
 * mutex in KeyGenJob's destructor, run by GC inside ExportJWKEdKey; measured, and
 * test/unit/shared/ohttp/x25519-keygen-liveness.test.ts), and every OHTTP request and response
 * makes one. Without a KeyGenJob there is nothing for GC to destroy under that lock. The DER
 * encoders would avoid JWK but cost 3-10x more (OpenSSL's encoder/decoder: ~150 µs to export a
 * public key, ~650 µs to import a secret).
 */

/** base64url of bytes read in place: no second copy of a secret in a Buffer (the string remains). */
const base64urlView = (bytes: Uint8Array) =>
  Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64url');

/** The private KeyObject of a raw X25519 secret, and its raw public key. */
function x25519FromSecret(secret: Uint8Array): { privateKey: KeyObject; publicKey: Uint8Array } {
  // With `d` present Node imports the raw private key and ignores `x` (which must be a string).
  const privateKey = createPrivateKey({
    key: { kty: 'OKP', crv: 'X25519', d: base64urlView(secret), x: '' },
    format: 'jwk',
  });
  const x = createPublicKey(privateKey).export({ format: 'jwk' }).x as string;
  return { privateKey, publicKey: new Uint8Array(Buffer.from(x, 'base64url')) };
}

/** The raw 32-byte X25519 or Ed25519 public key: the tail of its SubjectPublicKeyInfo (rare paths). */
export function rawPublicKey(key: KeyObject): Uint8Array {
  const der = key.export({ format: 'der', type: 'spki' });
  return new Uint8Array(der.subarray(der.byteLength - 32));
}

/**
 * KeyObjects for raw secrets this process made or has already imported, keyed by the very byte
 * array hpke-js keeps in its key object, so a secret is imported once.
 */
const privateKeys = new WeakMap<Uint8Array, { privateKey: KeyObject; publicKey: Uint8Array }>();

function x25519Private(secret: Uint8Array): { privateKey: KeyObject; publicKey: Uint8Array } {
  let entry = privateKeys.get(secret);
  if (entry === undefined) {
    entry = x25519FromSecret(secret);
    privateKeys.set(secret, entry);
  }
  return entry;
}

/** The curve interface hpke-js's X-curve DHKEM calls, over OpenSSL's X25519. */
const nodeX25519 = {
  utils: {
    randomSecretKey(): Uint8Array {
      const secret = new Uint8Array(randomBytes(32));
      privateKeys.set(secret, x25519FromSecret(secret));
      return secret;
    },
  },
  getPublicKey(secret: Uint8Array): Uint8Array {
    return x25519Private(secret).publicKey;
  },
  getSharedSecret(secret: Uint8Array, publicKey: Uint8Array): Uint8Array {
    // OpenSSL refuses small-order points (an all-zero shared secret), as RFC 9180 section 7.1.4 requires.
    const peer = createPublicKey({
      key: { kty: 'OKP', crv: 'X25519', x: Buffer.from(publicKey).toString('base64url') },
      format: 'jwk',
    });
    return new Uint8Array(diffieHellman({ privateKey: x25519Private(secret).privateKey, publicKey: peer }));
  },
};

/** DHKEM(X25519, HKDF-SHA256) on node:crypto. */
export class NodeDhkemX25519HkdfSha256 extends Dhkem {
  override readonly id = KemId.DhkemX25519HkdfSha256;
  override readonly secretSize = 32;
  override readonly encSize = 32;
  override readonly publicKeySize = 32;
  override readonly privateKeySize = 32;

  constructor() {
    const kdf = new NodeHkdfSha256();
    super(
      KemId.DhkemX25519HkdfSha256,
      new XCurveDhkemPrimitives('X25519', 32, nodeX25519 as never, kdf),
      kdf,
    );
  }
}

/** AES-128-GCM, AES-256-GCM and ChaCha20-Poly1305 on node:crypto. */
export class NodeAead implements AeadInterface {
  readonly id: AeadId;
  readonly keySize: number;
  readonly nonceSize = 12;
  readonly tagSize = 16;
  readonly #cipher: CipherGCMTypes;

  constructor(id: AeadId) {
    this.id = id;
    this.keySize = id === AeadId.Aes128Gcm ? 16 : 32;
    this.#cipher = (
      id === AeadId.Aes128Gcm ? 'aes-128-gcm' : id === AeadId.Aes256Gcm ? 'aes-256-gcm' : 'chacha20-poly1305'
    ) as CipherGCMTypes;
  }

  createEncryptionContext(key: Bytes): AeadEncryptionContext {
    const secret = Uint8Array.from(bytes(key));
    const cipher = this.#cipher;
    return {
      async seal(iv, data, aad) {
        const context = createCipheriv(cipher, secret, bytes(iv), { authTagLength: 16 });
        context.setAAD(bytes(aad));
        return joined([context.update(bytes(data)), context.final(), context.getAuthTag()]);
      },
      async open(iv, data, aad) {
        const sealed = bytes(data);
        if (sealed.byteLength < 16) throw new Error('ciphertext too short');
        const context = createDecipheriv(cipher, secret, bytes(iv), { authTagLength: 16 });
        context.setAAD(bytes(aad));
        context.setAuthTag(sealed.subarray(sealed.byteLength - 16));
        return joined([context.update(sealed.subarray(0, sealed.byteLength - 16)), context.final()]);
      },
    };
  }
}
