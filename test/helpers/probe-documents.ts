/**
 * Attestation documents built byte by byte to probe one rule of the verifier at a time, signed
 * under a test root so that everything except the probed property is right: a root and a leaf made
 * with the simulated PKI's certificate writer, a payload written item by item (so a test can choose
 * an encoding no ordinary encoder would write: a non-shortest key, a float, a duplicate), and a real
 * ES384 signature over whatever bytes the test wrote.
 *
 * Nothing here calls the code under test: a probe and its control differ only in the bytes the
 * test chose, and the test states which one the verifier must accept.
 */
import { generateKeyPairSync, randomBytes, sign } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { KEY_USAGE_BITS, buildCertificate } from '../../sim/x509-builder.ts';
import type { CertificateTemplate, DistinguishedName } from '../../sim/x509-builder.ts';

// ---- CBOR items, written by hand (RFC 8949 section 3) ----

/** The argument width of a head: `shortest` is the preferred form; 1, 2, 4 or 8 force that many bytes. */
export type Width = 'shortest' | 1 | 2 | 4 | 8;

/** A head: major type and argument, in the width asked for. */
export function head(major: number, value: number | bigint, width: Width = 'shortest'): Uint8Array {
  const argument = BigInt(value);
  const bytes =
    width !== 'shortest'
      ? width
      : argument < 24n
        ? 0
        : argument < 0x100n
          ? 1
          : argument < 0x10000n
            ? 2
            : argument < 0x100000000n
              ? 4
              : 8;
  const out = new Uint8Array(1 + bytes);
  out[0] = (major << 5) | (bytes === 0 ? Number(argument) : { 1: 24, 2: 25, 4: 26, 8: 27 }[bytes]!);
  for (let index = 0; index < bytes; index++) {
    out[bytes - index] = Number((argument >> BigInt(8 * index)) & 0xffn);
  }
  return out;
}

export const uint = (value: number | bigint, width?: Width) => head(0, value, width);
export const negative = (value: number, width?: Width) => head(1, -1 - value, width);
export const bytes = (value: Uint8Array, width?: Width) => concat(head(2, value.byteLength, width), value);
export const text = (value: string, width?: Width) => {
  const utf8 = new TextEncoder().encode(value);
  return concat(head(3, utf8.byteLength, width), utf8);
};
export const array = (items: readonly Uint8Array[]) => concat(head(4, items.length), ...items);
/** A map from already-encoded keys and values; duplicates are kept exactly as given. */
export const map = (entries: readonly (readonly [Uint8Array, Uint8Array])[]) =>
  concat(head(5, entries.length), ...entries.flat());
export const nullItem = () => new Uint8Array([0xf6]);

/** An IEEE 754 double (major type 7, additional information 27). */
export function float64(value: number): Uint8Array {
  const out = new Uint8Array(9);
  out[0] = 0xfb;
  new DataView(out.buffer).setFloat64(1, value);
  return out;
}

/** An IEEE 754 half-precision float, for small integral values (0xf9 + 2 bytes). */
export function float16(value: number): Uint8Array {
  // Exact for the small integers the probes use: 1.0 = 0x3c00, 3.0 = 0x4200.
  const halves: Record<number, number> = { 0: 0x0000, 1: 0x3c00, 2: 0x4000, 3: 0x4200 };
  const bits = halves[value];
  if (bits === undefined) throw new RangeError(`float16 probe value ${value} not tabled`);
  return new Uint8Array([0xf9, bits >> 8, bits & 0xff]);
}

export function concat(...parts: readonly Uint8Array[]): Uint8Array {
  return new Uint8Array(Buffer.concat(parts.map((part) => Buffer.from(part))));
}

// ---- a test PKI: root → leaf, ECDSA P-384, the Nitro shape ----

const HOUR_MS = 3_600_000;

/** Overrides of one certificate's template, for probes of the certificate reader. */
export type CertificateOverrides = Pick<CertificateTemplate, 'booleanTrueBytes' | 'extraExtensions'>;

/** Validity of the probe leaf: notBefore and notAfter, as the verifier reads them (whole seconds). */
export interface ProbeChain {
  readonly root: Uint8Array;
  readonly leaf: Uint8Array;
  readonly leafKey: KeyObject;
  readonly leafNotBefore: number;
  readonly leafNotAfter: number;
}

/**
 * A root (CA, keyCertSign) and a leaf it signs (not a CA, digitalSignature), the leaf valid for
 * three hours from `notBefore` (a whole second, as X.509 times are), the root for a year around it.
 */
export function probeChain(
  notBefore: number,
  overrides: { readonly root?: CertificateOverrides; readonly leaf?: CertificateOverrides } = {},
): ProbeChain {
  const start = Math.floor(notBefore / 1000) * 1000;
  const rootKeys = generateKeyPairSync('ec', { namedCurve: 'secp384r1' });
  const leafKeys = generateKeyPairSync('ec', { namedCurve: 'secp384r1' });
  const rootName: DistinguishedName = [
    ['C', 'US'],
    ['O', 'nitro-infer'],
    ['OU', 'probe'],
    ['CN', 'probe-root'],
  ];
  const root = buildCertificate(
    {
      serialNumber: randomBytes(16),
      subject: rootName,
      issuer: rootName,
      notBefore: new Date(start - 180 * 24 * HOUR_MS),
      notAfter: new Date(start + 180 * 24 * HOUR_MS),
      subjectPublicKey: rootKeys.publicKey,
      issuerPublicKey: rootKeys.publicKey,
      isCertificateAuthority: true,
      keyUsage: [KEY_USAGE_BITS.keyCertSign, KEY_USAGE_BITS.cRLSign],
      ...overrides.root,
    },
    rootKeys.privateKey,
  );
  const leafNotAfter = start + 3 * HOUR_MS;
  const leaf = buildCertificate(
    {
      serialNumber: randomBytes(16),
      subject: [...rootName.slice(0, 3), ['CN', 'probe-leaf']],
      issuer: rootName,
      notBefore: new Date(start),
      notAfter: new Date(leafNotAfter),
      subjectPublicKey: leafKeys.publicKey,
      issuerPublicKey: rootKeys.publicKey,
      isCertificateAuthority: false,
      keyUsage: [KEY_USAGE_BITS.digitalSignature],
      ...overrides.leaf,
    },
    rootKeys.privateKey,
  );
  return { root, leaf, leafKey: leafKeys.privateKey, leafNotBefore: start, leafNotAfter };
}

// ---- payloads and documents ----

/** The protected header `{1: -35}` in preferred form: `a1 01 38 22`. */
export const ES384_HEADER = map([[uint(1), negative(-35)]]);

/** The nine payload fields of a Nitro document, each an encoded key and value, in the NSM's order. */
export interface PayloadParts {
  moduleId: Uint8Array;
  digest: Uint8Array;
  timestamp: Uint8Array;
  pcrs: Uint8Array;
  certificate: Uint8Array;
  cabundle: Uint8Array;
  publicKey: Uint8Array;
  userData: Uint8Array;
  nonce: Uint8Array;
}

/** The 16 boot PCRs (0–15), each 48 bytes, PCR0/1/2 non-zero so the document is not debug mode. */
export function bootPcrs(): Map<number, Uint8Array> {
  return new Map(
    Array.from({ length: 16 }, (_, index) => [index, new Uint8Array(48).fill(index < 3 ? 0xa0 + index : 0)]),
  );
}

/** A `pcrs` map value with shortest keys, from index → value. */
export function pcrsItem(pcrs: ReadonlyMap<number, Uint8Array>): Uint8Array {
  return map([...pcrs].map(([index, value]) => [uint(index), bytes(value)] as const));
}

/** Key/value pairs of a well-formed payload for `chain` at `timestamp`, to be altered by a probe. */
export function payloadEntries(
  chain: ProbeChain,
  timestamp: number,
  nonce: Uint8Array,
): [Uint8Array, Uint8Array][] {
  return [
    [text('module_id'), text('i-0123456789abcdef0-enc0123456789abcdef')],
    [text('digest'), text('SHA384')],
    [text('timestamp'), uint(timestamp)],
    [text('pcrs'), pcrsItem(bootPcrs())],
    [text('certificate'), bytes(chain.leaf)],
    [text('cabundle'), array([bytes(chain.root)])],
    [text('public_key'), nullItem()],
    [text('user_data'), nullItem()],
    [text('nonce'), bytes(nonce)],
  ];
}

/** An untagged COSE_Sign1 over `payload` (exact bytes), signed with the leaf's key. */
export function signedDocument(
  chain: ProbeChain,
  payload: Uint8Array,
  protectedHeader: Uint8Array = ES384_HEADER,
): Uint8Array {
  const signed = array([
    text('Signature1'),
    bytes(protectedHeader),
    bytes(new Uint8Array(0)),
    bytes(payload),
  ]);
  const signature = sign('sha384', signed, { key: chain.leafKey, dsaEncoding: 'ieee-p1363' });
  return array([bytes(protectedHeader), map([]), bytes(payload), bytes(new Uint8Array(signature))]);
}
