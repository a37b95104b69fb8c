/**
 * The parts of an X.509 certificate that Node's `X509Certificate` does not expose but the Nitro
 * chain check needs: the signature algorithm, basic constraints with their path length, key usage,
 * and whether any extension we do not understand is marked critical (RFC 5280 section 4.2: such a
 * certificate must be rejected).
 *
 * Read with node-forge's strict DER reader; the cryptography stays with Node's `crypto`.
 */
import forge from 'node-forge';
import { readAsn1Strict, readDerBoolean } from '../asn1.ts';

/** ecdsa-with-SHA384 (RFC 5758 section 3.2), the algorithm of every Nitro certificate. */
export const OID_ECDSA_WITH_SHA384 = '1.2.840.10045.4.3.3';
const OID_BASIC_CONSTRAINTS = '2.5.29.19';
const OID_KEY_USAGE = '2.5.29.15';
const OID_SUBJECT_KEY_IDENTIFIER = '2.5.29.14';
const OID_AUTHORITY_KEY_IDENTIFIER = '2.5.29.35';
const OID_CRL_DISTRIBUTION_POINTS = '2.5.29.31';
const UNDERSTOOD_EXTENSIONS = new Set([
  OID_BASIC_CONSTRAINTS,
  OID_KEY_USAGE,
  OID_SUBJECT_KEY_IDENTIFIER,
  OID_AUTHORITY_KEY_IDENTIFIER,
  OID_CRL_DISTRIBUTION_POINTS,
]);

/** Key usage bits (RFC 5280 section 4.2.1.3), numbered from the most significant bit of the first byte. */
export const KEY_USAGE = { digitalSignature: 0, keyCertSign: 5 } as const;

/** What the chain check reads from one certificate. */
export interface CertificateProfile {
  readonly signatureAlgorithm: string;
  /** From basic constraints; false where the extension is absent. */
  readonly isCertificateAuthority: boolean;
  /** From basic constraints; undefined where unconstrained. */
  readonly pathLength: number | undefined;
  /** Key usage bits that are set, or undefined where the extension is absent. */
  readonly keyUsage: ReadonlySet<number> | undefined;
  /** OIDs of critical extensions outside the set this profile understands. */
  readonly unknownCriticalExtensions: readonly string[];
}

/**
 * Reads the profile of a DER certificate.
 * @throws Error when the DER is not a certificate (the caller maps this to a typed error).
 */
export function readCertificateProfile(der: Uint8Array): CertificateProfile {
  const certificate = readAsn1Strict(toBinaryString(der));
  const [tbs, algorithm] = children(certificate);
  const signatureAlgorithm = forge.asn1.derToOid(bytesOf(children(algorithm)[0]));

  let isCertificateAuthority = false;
  let pathLength: number | undefined;
  let keyUsage: Set<number> | undefined;
  const unknownCriticalExtensions: string[] = [];

  const wrapper = children(tbs).find(
    (node) => node.tagClass === forge.asn1.Class.CONTEXT_SPECIFIC && node.type === 3,
  );
  for (const extension of wrapper === undefined ? [] : children(children(wrapper)[0])) {
    // Extension ::= SEQUENCE { extnID, critical BOOLEAN DEFAULT FALSE, extnValue OCTET STRING }
    const parts = children(extension);
    if (parts.length !== 2 && parts.length !== 3) throw new Error('an extension has 2 or 3 fields');
    const oid = forge.asn1.derToOid(bytesOf(parts[0]));
    // Read in DER only: a BER TRUE (`01`) is critical to OpenSSL, so it must not pass here as "not critical".
    const critical = parts.length === 3 && readDerBoolean(parts[1]);
    const value = readAsn1Strict(bytesOf(parts[parts.length - 1]));
    if (oid === OID_BASIC_CONSTRAINTS) {
      for (const field of children(value)) {
        if (field.type === forge.asn1.Type.BOOLEAN) isCertificateAuthority = readDerBoolean(field);
        if (field.type === forge.asn1.Type.INTEGER) pathLength = readSmallInteger(bytesOf(field));
      }
    } else if (oid === OID_KEY_USAGE) {
      keyUsage = readBitString(bytesOf(value));
    } else if (critical && !UNDERSTOOD_EXTENSIONS.has(oid)) {
      unknownCriticalExtensions.push(oid);
    }
  }
  return { signatureAlgorithm, isCertificateAuthority, pathLength, keyUsage, unknownCriticalExtensions };
}

function readSmallInteger(bytes: string): number {
  // Path lengths are tiny; a longer or negative encoding is not a certificate we accept.
  if (bytes.length === 0 || bytes.length > 2 || bytes.charCodeAt(0) & 0x80)
    throw new Error('bad path length');
  let value = 0;
  for (let index = 0; index < bytes.length; index++) value = value * 256 + bytes.charCodeAt(index);
  return value;
}

function readBitString(bytes: string): Set<number> {
  // The first byte counts unused trailing bits; the rest are the bits, most significant first.
  const bits = new Set<number>();
  for (let byteIndex = 1; byteIndex < bytes.length; byteIndex++) {
    const byte = bytes.charCodeAt(byteIndex);
    for (let bit = 0; bit < 8; bit++) {
      if (byte & (0x80 >> bit)) bits.add((byteIndex - 1) * 8 + bit);
    }
  }
  return bits;
}

function children(node: forge.asn1.Asn1 | undefined): forge.asn1.Asn1[] {
  if (node === undefined || !Array.isArray(node.value)) throw new Error('expected a constructed ASN.1 value');
  return node.value;
}

function bytesOf(node: forge.asn1.Asn1 | undefined): string {
  if (node === undefined || typeof node.value !== 'string')
    throw new Error('expected a primitive ASN.1 value');
  return node.value;
}

function toBinaryString(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('latin1');
}
