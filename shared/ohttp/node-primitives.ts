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
  randomFillSync,
} from 'node:crypto';
import type { Cipher, CipherGCMTypes, Decipher, KeyObject } from 'node:crypto';
import { AeadId, Dhkem, HkdfSha256Native, KemId, XCurveDhkemPrimitives } from '@hpke/common';
import type { AeadEncryptionContext, AeadInterface } from '@hpke/common';

type Bytes = ArrayBufferLike | ArrayBufferView;

function bytes(input: Bytes): Uint8Array {
  return ArrayBuffer.isView(input)
    ? new Uint8Array(input.buffer, input.byteOffset, input.byteLength)
    : new Uint8Array(input);
}

/** `input`'s own ArrayBuffer when it spans all of it (OpenSSL's outputs do), else one copy. */
function arrayBuffer(input: Uint8Array): ArrayBuffer {
  return input.byteOffset === 0 && input.buffer.byteLength === input.byteLength
    ? (input.buffer as ArrayBuffer)
    : (input.buffer.slice(input.byteOffset, input.byteOffset + input.byteLength) as ArrayBuffer);
}

/** HMAC-SHA256, as the digest Buffer OpenSSL wrote (its own 32-byte ArrayBuffer). */
export function hmacSha256(key: Uint8Array, ...data: Uint8Array[]): Buffer {
  const hmac = createHmac('sha256', key);
  for (const part of data) hmac.update(part);
  return hmac.digest();
}

/**
 * HKDF-Expand for outputs of at most one hash block (all HPKE and OHTTP need): T(1) alone, one
 * HMAC over `info ‖ 0x01`.
 */
export function expandOneBlock(prk: Uint8Array, info: Uint8Array, length: number): Uint8Array {
  const block = hmacSha256(prk, info, COUNTER_ONE);
  return length === block.byteLength ? block : block.subarray(0, length);
}

const COUNTER_ONE = Uint8Array.of(1);
const ZERO_SALT = new Uint8Array(32);
/** RFC 9180 labels whose LabeledExtract inputs are public in base mode: the psk_id and the info. */
const PUBLIC_EXTRACT_LABELS = new Set(['psk_id_hash', 'info_hash']);
/** Public hashes kept per label (one per key config and suite a client talks to). */
const PUBLIC_EXTRACTS_MAX = 8;

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.byteLength !== b.byteLength) return false;
  for (let index = 0; index < a.byteLength; index++) if (a[index] !== b[index]) return false;
  return true;
}

/**
 * HKDF-SHA256 (RFC 5869) with synchronous HMACs; the labeled forms come from hpke-js. Three
 * savings on hpke-js's key schedule, which calls `extractAndExpand(shared_secret, ikm, …)` once
 * each for the exporter secret, key and base nonce (three identical extracts) and hashes the
 * public psk_id and info every time: the extract is computed once per `ikm` (kept beside that
 * array, so it goes with it), the public hashes once per value, and an expand of one block is one
 * HMAC whose digest is returned as it is.
 */
export class NodeHkdfSha256 extends HkdfSha256Native {
  /** PRK by the labeled ikm array it was extracted from, with the salt it was extracted with. */
  readonly #extracts = new WeakMap<object, { salt: Bytes; prk: ArrayBuffer }>();
  /** Whether a label (hpke-js passes its own constant arrays) names a public extract. */
  readonly #publicLabels = new WeakMap<Uint8Array, boolean>();
  /** psk_id_hash and info_hash by label, with the (public) input each was computed from. */
  readonly #publicExtracts = new WeakMap<Uint8Array, { ikm: Uint8Array; hash: ArrayBuffer }[]>();

  override async extract(salt: Bytes, ikm: Bytes): Promise<ArrayBuffer> {
    const key = bytes(salt).byteLength === 0 ? ZERO_SALT : bytes(salt);
    return arrayBuffer(hmacSha256(key, bytes(ikm)));
  }

  override async expand(prk: Bytes, info: Bytes, length: number): Promise<ArrayBuffer> {
    if (length > 255 * 32) throw new Error('Entropy limit reached');
    if (length <= 32) return arrayBuffer(expandOneBlock(bytes(prk), bytes(info), length));
    const output = new Uint8Array(length);
    let previous: Uint8Array = new Uint8Array(0);
    for (let counter = 1, offset = 0; offset < length; counter++) {
      previous = hmacSha256(bytes(prk), previous, bytes(info), Uint8Array.of(counter));
      output.set(previous.subarray(0, Math.min(previous.byteLength, length - offset)), offset);
      offset += previous.byteLength;
    }
    return output.buffer;
  }

  override async extractAndExpand(
    salt: Bytes,
    ikm: Bytes,
    info: Bytes,
    length: number,
  ): Promise<ArrayBuffer> {
    // hpke-js never changes a labeled ikm after building it, so the array names its contents.
    let entry = this.#extracts.get(ikm);
    if (entry === undefined || entry.salt !== salt) {
      entry = { salt, prk: await this.extract(salt, ikm) };
      this.#extracts.set(ikm, entry);
    }
    return this.expand(entry.prk, info, length);
  }

  override async labeledExtract(salt: Bytes, label: Uint8Array, ikm: Uint8Array): Promise<ArrayBuffer> {
    let isPublic = this.#publicLabels.get(label);
    if (isPublic === undefined) {
      isPublic = PUBLIC_EXTRACT_LABELS.has(new TextDecoder().decode(label));
      this.#publicLabels.set(label, isPublic);
    }
    if (!isPublic || bytes(salt).byteLength !== 0) return super.labeledExtract(salt, label, ikm);
    let entries = this.#publicExtracts.get(label);
    if (entries === undefined) {
      entries = [];
      this.#publicExtracts.set(label, entries);
    }
    let entry = entries.find((candidate) => equalBytes(candidate.ikm, ikm));
    if (entry === undefined) {
      entry = { ikm: ikm.slice(), hash: await super.labeledExtract(salt, label, ikm) };
      // Bounded: a client talking to many key configs re-hashes rather than growing the list.
      if (entries.length >= PUBLIC_EXTRACTS_MAX) entries.shift();
      entries.push(entry);
    }
    return entry.hash.slice(0);
  }
}

/*
 * Ephemeral keys are random bytes imported as a JWK private key (EVP_PKEY_new_raw_private_key:
 * ~50 µs with the public key's export), never `generateKeyPairSync('x25519')`: on Node 20.20 a
 * loop of generateKeyPairSync followed by a JWK export deadlocks the process after ~10^5 keys (a
 * mutex in KeyGenJob's destructor, run by GC inside ExportJWKEdKey; measured, and
 * test/unit/shared/ohttp/x25519-keygen-liveness.test.ts), and every OHTTP request and response
 * makes one. Without a KeyGenJob there is nothing for GC to destroy under that lock. DER would
 * avoid JWK but costs 3-10x more, even a raw key behind a fixed PKCS#8 or SPKI prefix (no encoder
 * run): OpenSSL 3's decoder framework probes formats. Measured per import here: PKCS#8 610 µs
 * against JWK 71 µs (most of it the public key's scalar multiplication), SPKI 130 µs against JWK
 * 16 µs; exporting a public key as SPKI 100 µs against JWK 7 µs.
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

/**
 * Public KeyObjects by the very byte array hpke-js keeps in its public key object: a recipient
 * key deserialized once (encapsulation.ts keeps it per key config) is imported once, not per request.
 */
const publicKeys = new WeakMap<Uint8Array, KeyObject>();

function x25519Public(publicKey: Uint8Array): KeyObject {
  let key = publicKeys.get(publicKey);
  if (key === undefined) {
    key = createPublicKey({ key: { kty: 'OKP', crv: 'X25519', x: base64urlView(publicKey) }, format: 'jwk' });
    publicKeys.set(publicKey, key);
  }
  return key;
}

/** The curve interface hpke-js's X-curve DHKEM calls, over OpenSSL's X25519. */
const nodeX25519 = {
  utils: {
    randomSecretKey(): Uint8Array {
      // Written in place: no copy of the secret in a pooled Buffer.
      const secret = randomFillSync(new Uint8Array(32));
      privateKeys.set(secret, x25519FromSecret(secret));
      return secret;
    },
  },
  getPublicKey(secret: Uint8Array): Uint8Array {
    return x25519Private(secret).publicKey;
  },
  getSharedSecret(secret: Uint8Array, publicKey: Uint8Array): Uint8Array {
    // OpenSSL refuses small-order points (an all-zero shared secret), as RFC 9180 section 7.1.4
    // requires (test/unit/shared/ohttp/x25519-small-order.test.ts).
    const shared = diffieHellman({
      privateKey: x25519Private(secret).privateKey,
      publicKey: x25519Public(publicKey),
    });
    // hpke-js takes `.buffer`: OpenSSL's output is its own 32-byte ArrayBuffer.
    return new Uint8Array(arrayBuffer(shared));
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

/**
 * Bytes fed to a cipher at once when its output is copied into a buffer of ours: OpenSSL's output
 * for a chunk is a fresh Buffer still in cache when copied, where one `update` of a whole 0.5 MB
 * body would be a second large allocation (page faults) and a copy from cold memory.
 */
const CHUNK_BYTES = 64 * 1024;

/** Runs `input` through `cipher` into `out` from `offset`, chunk by chunk; returns the end offset. */
export function updateInto(
  cipher: Cipher | Decipher,
  input: Uint8Array,
  out: Uint8Array,
  offset: number,
): number {
  let at = offset;
  for (let start = 0; start < input.byteLength; start += CHUNK_BYTES) {
    const chunk = cipher.update(input.subarray(start, Math.min(input.byteLength, start + CHUNK_BYTES)));
    out.set(chunk, at);
    at += chunk.byteLength;
  }
  return at;
}

/**
 * An AEAD seal written once into one buffer: `prefixBytes` left for the caller, then the
 * ciphertext of `pieces` in order, then the tag. GCM and ChaCha20-Poly1305 are stream modes:
 * the ciphertext is exactly as long as the plaintext, and `final()` adds nothing.
 */
export function sealInto(
  cipherName: CipherGCMTypes | 'chacha20-poly1305',
  key: Uint8Array,
  iv: Uint8Array,
  pieces: readonly Uint8Array[],
  prefixBytes: number,
  aad?: Uint8Array,
): Uint8Array {
  const plaintextBytes = pieces.reduce((sum, piece) => sum + piece.byteLength, 0);
  const out = new Uint8Array(prefixBytes + plaintextBytes + TAG_BYTES);
  // No options object: GCM's and ChaCha20-Poly1305's tags are 16 bytes by default (a decipher
  // still pins the length), and validating the options is a third of createCipheriv's cost.
  const cipher = createCipheriv(cipherName as CipherGCMTypes, key, iv);
  if (aad !== undefined && aad.byteLength > 0) cipher.setAAD(aad);
  let offset = prefixBytes;
  for (const piece of pieces) offset = updateInto(cipher, piece, out, offset);
  if (cipher.final().byteLength !== 0 || offset !== out.byteLength - TAG_BYTES)
    throw new Error('not a stream AEAD');
  out.set(cipher.getAuthTag(), offset);
  return out;
}

/**
 * An AEAD open of `sealed` (ciphertext ‖ tag) into a buffer of its own holding exactly the
 * plaintext (for a small one, OpenSSL's output itself). Throws if it does not authenticate.
 */
export function openOwned(
  cipherName: CipherGCMTypes | 'chacha20-poly1305',
  key: Uint8Array,
  iv: Uint8Array,
  sealed: Uint8Array,
  aad?: Uint8Array,
): Uint8Array {
  if (sealed.byteLength < TAG_BYTES) throw new Error('ciphertext too short');
  const decipher = createDecipheriv(cipherName as CipherGCMTypes, key, iv, { authTagLength: TAG_BYTES });
  if (aad !== undefined && aad.byteLength > 0) decipher.setAAD(aad);
  decipher.setAuthTag(sealed.subarray(sealed.byteLength - TAG_BYTES));
  const ciphertext = sealed.subarray(0, sealed.byteLength - TAG_BYTES);
  if (ciphertext.byteLength <= CHUNK_BYTES) {
    const plaintext = decipher.update(ciphertext);
    if (decipher.final().byteLength !== 0) throw new Error('not a stream AEAD');
    return new Uint8Array(arrayBuffer(plaintext));
  }
  // Chunked into one buffer of ours: for 0.5 MB, a quarter less CPU than one `update` whose large
  // fresh output is then faulted in (measured). Unauthenticated bytes in it until `final()` passes;
  // it is dropped unseen if that throws.
  const plaintext = new Uint8Array(ciphertext.byteLength);
  if (
    updateInto(decipher, ciphertext, plaintext, 0) !== plaintext.byteLength ||
    decipher.final().byteLength !== 0
  )
    throw new Error('not a stream AEAD');
  return plaintext;
}

const TAG_BYTES = 16;

/** AES-128-GCM, AES-256-GCM and ChaCha20-Poly1305 on node:crypto, for hpke-js's contexts. */
export class NodeAead implements AeadInterface {
  readonly id: AeadId;
  readonly keySize: number;
  readonly nonceSize = 12;
  readonly tagSize = TAG_BYTES;
  readonly #cipher: CipherGCMTypes | 'chacha20-poly1305';

  constructor(id: AeadId) {
    this.id = id;
    this.keySize = id === AeadId.Aes128Gcm ? 16 : 32;
    this.#cipher =
      id === AeadId.Aes128Gcm ? 'aes-128-gcm' : id === AeadId.Aes256Gcm ? 'aes-256-gcm' : 'chacha20-poly1305';
  }

  createEncryptionContext(key: Bytes): AeadEncryptionContext {
    const secret = Uint8Array.from(bytes(key));
    const cipher = this.#cipher;
    // One ArrayBuffer each, written once: hpke-js hands it back to encapsulation.ts as it is.
    return {
      async seal(iv, data, aad) {
        return sealInto(cipher, secret, bytes(iv), [bytes(data)], 0, bytes(aad)).buffer as ArrayBuffer;
      },
      async open(iv, data, aad) {
        return openOwned(cipher, secret, bytes(iv), bytes(data), bytes(aad)).buffer as ArrayBuffer;
      },
    };
  }
}
