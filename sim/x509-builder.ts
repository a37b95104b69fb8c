/**
 * A small X.509 v3 certificate writer for the simulated Nitro PKI.
 *
 * Node's `crypto` can read and verify certificates but not make them, and node-forge signs only
 * with RSA; so the TBSCertificate is laid out here with node-forge's DER writer and signed by
 * Node's `crypto` with ECDSA P-384 / SHA-384, the one algorithm Nitro uses.
 */
import { createHash, sign } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import forge from 'node-forge';

const { asn1 } = forge;
const OID = {
  ecdsaWithSha384: '1.2.840.10045.4.3.3',
  country: '2.5.4.6',
  organization: '2.5.4.10',
  organizationalUnit: '2.5.4.11',
  commonName: '2.5.4.3',
  state: '2.5.4.8',
  locality: '2.5.4.7',
  basicConstraints: '2.5.29.19',
  keyUsage: '2.5.29.15',
  subjectKeyIdentifier: '2.5.29.14',
  authorityKeyIdentifier: '2.5.29.35',
  subjectAltName: '2.5.29.17',
  extendedKeyUsage: '2.5.29.37',
  serverAuth: '1.3.6.1.5.5.7.3.1',
} as const;

/** A distinguished name as ordered attributes, e.g. `[['C', 'US'], ['CN', 'aws.nitro-enclaves']]`. */
export type DistinguishedName = readonly (readonly ['C' | 'O' | 'OU' | 'CN' | 'ST' | 'L', string])[];

const ATTRIBUTE_OIDS = {
  C: OID.country,
  O: OID.organization,
  OU: OID.organizationalUnit,
  CN: OID.commonName,
  ST: OID.state,
  L: OID.locality,
} as const;

/** Key usage flags as bit numbers (RFC 5280 section 4.2.1.3). */
export const KEY_USAGE_BITS = {
  digitalSignature: 0,
  nonRepudiation: 1,
  keyCertSign: 5,
  cRLSign: 6,
} as const;

/** What goes into one certificate. */
export interface CertificateTemplate {
  readonly serialNumber: Uint8Array;
  readonly subject: DistinguishedName;
  readonly issuer: DistinguishedName;
  readonly notBefore: Date;
  readonly notAfter: Date;
  readonly subjectPublicKey: KeyObject;
  readonly issuerPublicKey: KeyObject;
  readonly isCertificateAuthority: boolean;
  readonly pathLength?: number;
  readonly keyUsage: readonly number[];
  /** For TLS server certificates: DNS names and IPv4 addresses, and the serverAuth purpose. */
  readonly serverNames?: readonly string[];
  /**
   * For verifier tests only: the content byte written for each BOOLEAN TRUE of the standard
   * extensions (their `critical` flags and basic constraints' `cA`). DER allows only 0xff; any other
   * non-zero byte is BER, which a strict reader must refuse. Default 0xff everywhere.
   */
  readonly booleanTrueBytes?: { readonly critical?: number; readonly certificateAuthority?: number };
  /** For verifier tests only: further extensions, appended after the standard ones. */
  readonly extraExtensions?: readonly ExtraExtension[];
}

/** An extension written as given (see {@link CertificateTemplate.extraExtensions}). */
export interface ExtraExtension {
  readonly oid: string;
  /** The BOOLEAN content byte of `critical`, or undefined to omit the flag (not critical). */
  readonly criticalByte?: number;
  /** DER of the extension's value (wrapped in the extnValue OCTET STRING here). */
  readonly value: Uint8Array;
}

/** Writes and signs a certificate; returns its DER. */
export function buildCertificate(template: CertificateTemplate, issuerPrivateKey: KeyObject): Uint8Array {
  const algorithm = sequence([oid(OID.ecdsaWithSha384)]);
  const critical = template.booleanTrueBytes?.critical ?? DER_TRUE;
  const extensions = [
    extension(
      OID.basicConstraints,
      critical,
      sequence([
        ...(template.isCertificateAuthority
          ? [boolean(template.booleanTrueBytes?.certificateAuthority ?? DER_TRUE)]
          : []),
        ...(template.pathLength === undefined ? [] : [integer(template.pathLength)]),
      ]),
    ),
    extension(OID.keyUsage, critical, bitString(template.keyUsage)),
    extension(OID.subjectKeyIdentifier, undefined, octetString(keyIdentifier(template.subjectPublicKey))),
  ];
  if (template.serverNames !== undefined) {
    const names = template.serverNames.map((serverName) =>
      /^\d+\.\d+\.\d+\.\d+$/.test(serverName)
        ? asn1.create(
            asn1.Class.CONTEXT_SPECIFIC,
            7,
            false,
            String.fromCharCode(...serverName.split('.').map(Number)),
          )
        : asn1.create(asn1.Class.CONTEXT_SPECIFIC, 2, false, serverName),
    );
    extensions.push(extension(OID.subjectAltName, undefined, sequence(names)));
    extensions.push(extension(OID.extendedKeyUsage, undefined, sequence([oid(OID.serverAuth)])));
  }
  if (template.issuerPublicKey !== template.subjectPublicKey) {
    const identifier = asn1.create(
      asn1.Class.CONTEXT_SPECIFIC,
      0,
      false,
      keyIdentifier(template.issuerPublicKey),
    );
    extensions.push(extension(OID.authorityKeyIdentifier, undefined, sequence([identifier])));
  }
  for (const extra of template.extraExtensions ?? []) {
    extensions.push(extension(extra.oid, extra.criticalByte, asn1.fromDer(binary(extra.value))));
  }
  const tbs = sequence([
    asn1.create(asn1.Class.CONTEXT_SPECIFIC, 0, true, [integer(2)]),
    asn1.create(asn1.Class.UNIVERSAL, asn1.Type.INTEGER, false, positiveInteger(template.serialNumber)),
    algorithm,
    name(template.issuer),
    sequence([time(template.notBefore), time(template.notAfter)]),
    name(template.subject),
    asn1.fromDer(
      forge.util.createBuffer(binary(template.subjectPublicKey.export({ type: 'spki', format: 'der' }))),
    ),
    asn1.create(asn1.Class.CONTEXT_SPECIFIC, 3, true, [sequence(extensions)]),
  ]);
  const tbsDer = Buffer.from(asn1.toDer(tbs).getBytes(), 'latin1');
  const signature = sign('sha384', tbsDer, issuerPrivateKey);
  const certificate = sequence([
    tbs,
    algorithm,
    asn1.create(asn1.Class.UNIVERSAL, asn1.Type.BITSTRING, false, `\x00${signature.toString('latin1')}`),
  ]);
  return new Uint8Array(Buffer.from(asn1.toDer(certificate).getBytes(), 'latin1'));
}

function sequence(items: forge.asn1.Asn1[]): forge.asn1.Asn1 {
  return asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SEQUENCE, true, items);
}

function oid(value: string): forge.asn1.Asn1 {
  return asn1.create(asn1.Class.UNIVERSAL, asn1.Type.OID, false, asn1.oidToDer(value).getBytes());
}

function integer(value: number): forge.asn1.Asn1 {
  return asn1.create(asn1.Class.UNIVERSAL, asn1.Type.INTEGER, false, asn1.integerToDer(value).getBytes());
}

function positiveInteger(bytes: Uint8Array): string {
  // DER integers are signed: a leading 1 bit needs a zero byte in front.
  const text = Buffer.from(bytes).toString('latin1');
  return (bytes[0] ?? 0) & 0x80 ? `\x00${text}` : text;
}

function octetString(bytes: string): forge.asn1.Asn1 {
  return asn1.create(asn1.Class.UNIVERSAL, asn1.Type.OCTETSTRING, false, bytes);
}

function bitString(bits: readonly number[]): forge.asn1.Asn1 {
  const highest = Math.max(...bits);
  const bytes = new Uint8Array(Math.floor(highest / 8) + 1);
  for (const bit of bits) bytes[Math.floor(bit / 8)]! |= 0x80 >> (bit % 8);
  const unused = 7 - (highest % 8);
  return asn1.create(
    asn1.Class.UNIVERSAL,
    asn1.Type.BITSTRING,
    false,
    String.fromCharCode(unused) + binary(bytes),
  );
}

/** The DER encoding of BOOLEAN TRUE's content (X.690 11.1). */
const DER_TRUE = 0xff;

function boolean(contentByte: number): forge.asn1.Asn1 {
  return asn1.create(asn1.Class.UNIVERSAL, asn1.Type.BOOLEAN, false, String.fromCharCode(contentByte));
}

/** `criticalByte` undefined omits the flag: DER never writes the DEFAULT FALSE. */
function extension(id: string, criticalByte: number | undefined, value: forge.asn1.Asn1): forge.asn1.Asn1 {
  return sequence([
    oid(id),
    ...(criticalByte === undefined ? [] : [boolean(criticalByte)]),
    octetString(asn1.toDer(value).getBytes()),
  ]);
}

function name(attributes: DistinguishedName): forge.asn1.Asn1 {
  return sequence(
    attributes.map(([type, value]) =>
      asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SET, true, [
        sequence([
          oid(ATTRIBUTE_OIDS[type]),
          asn1.create(
            asn1.Class.UNIVERSAL,
            type === 'C' ? asn1.Type.PRINTABLESTRING : asn1.Type.UTF8,
            false,
            forge.util.encodeUtf8(value),
          ),
        ]),
      ]),
    ),
  );
}

function time(date: Date): forge.asn1.Asn1 {
  // RFC 5280 4.1.2.5: UTCTime through 2049, GeneralizedTime from 2050.
  return date.getUTCFullYear() < 2050
    ? asn1.create(asn1.Class.UNIVERSAL, asn1.Type.UTCTIME, false, asn1.dateToUtcTime(date))
    : asn1.create(asn1.Class.UNIVERSAL, asn1.Type.GENERALIZEDTIME, false, asn1.dateToGeneralizedTime(date));
}

function keyIdentifier(key: KeyObject): string {
  // RFC 5280 4.2.1.2 method 1, over the whole SPKI for simplicity: unique per key, which is what matters.
  return createHash('sha1')
    .update(key.export({ type: 'spki', format: 'der' }))
    .digest()
    .toString('latin1');
}

function binary(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('latin1');
}
