/**
 * The AWS Nitro Enclaves root certificate (G1), pinned.
 *
 * CN=aws.nitro-enclaves, ECDSA P-384, valid 2019-10-28 to 2049-10-28. AWS publishes it in
 * `AWS_NitroEnclaves_Root-G1.zip` (the hash printed next to that download is the zip's). Every
 * genuine attestation document carries exactly these bytes as `cabundle[0]`.
 */
import { X509Certificate, createHash } from 'node:crypto';
import { AttestationError } from '../errors.ts';

/** SHA-256 of the root's DER encoding, as published and as checked against `../shared/fixtures`. */
export const AWS_NITRO_ROOT_G1_SHA256 = '641a0321a3e244efe456463195d606317ed7cdcc3c1756e09893f3c68f79bb5b';

/** PEM of the AWS Nitro Enclaves root certificate G1. */
export const AWS_NITRO_ROOT_G1_PEM = `
-----BEGIN CERTIFICATE-----
MIICETCCAZagAwIBAgIRAPkxdWgbkK/hHUbMtOTn+FYwCgYIKoZIzj0EAwMwSTEL
MAkGA1UEBhMCVVMxDzANBgNVBAoMBkFtYXpvbjEMMAoGA1UECwwDQVdTMRswGQYD
VQQDDBJhd3Mubml0cm8tZW5jbGF2ZXMwHhcNMTkxMDI4MTMyODA1WhcNNDkxMDI4
MTQyODA1WjBJMQswCQYDVQQGEwJVUzEPMA0GA1UECgwGQW1hem9uMQwwCgYDVQQL
DANBV1MxGzAZBgNVBAMMEmF3cy5uaXRyby1lbmNsYXZlczB2MBAGByqGSM49AgEG
BSuBBAAiA2IABPwCVOumCMHzaHDimtqQvkY4MpJzbolL//Zy2YlES1BR5TSksfbb
48C8WBoyt7F2Bw7eEtaaP+ohG2bnUs990d0JX28TcPQXCEPZ3BABIeTPYwEoCWZE
h8l5YoQwTcU/9KNCMEAwDwYDVR0TAQH/BAUwAwEB/zAdBgNVHQ4EFgQUkCW1DdkF
R+eWw5b6cp3PmanfS5YwDgYDVR0PAQH/BAQDAgGGMAoGCCqGSM49BAMDA2kAMGYC
MQCjfy+Rocm9Xue4YnwWmNJVA44fA0P5W2OpYow9OYCVRaEevL8uO1XYru5xtMPW
rfMCMQCi85sWBbJwKKXdS6BptQFuZbT73o/gBh1qUxl/nNr12UO8Yfwr6wPLb+6N
IwLz3/Y=
-----END CERTIFICATE-----`;

/** DER of the AWS Nitro Enclaves root certificate G1; checked against its pinned hash at load. */
export const AWS_NITRO_ROOT_G1_DER: Uint8Array = pinnedDer(AWS_NITRO_ROOT_G1_PEM, AWS_NITRO_ROOT_G1_SHA256);

/**
 * Converts a PEM certificate to DER.
 * @throws Error when the text is not exactly one certificate.
 */
export function certificatePemToDer(pem: string): Uint8Array {
  return new Uint8Array(new X509Certificate(pem).raw);
}

/** A trusted root as a caller holds it: PEM text (one or several certificates) or DER bytes. */
export type RootCertificateInput = string | Uint8Array;

/** Most bytes one root input may have; a CA bundle is a few kilobytes. */
export const MAX_ROOT_INPUT_BYTES = 1024 * 1024;
/** Most certificates one policy may trust. */
export const MAX_ROOT_CERTIFICATES = 64;

const PEM_BLOCK = /-----BEGIN CERTIFICATE-----([\s\S]*?)-----END CERTIFICATE-----/g;

/**
 * Reads trusted roots given as PEM or DER, as a string, Buffer or Uint8Array, alone or in a list;
 * PEM text may hold several certificates (text between them, as bundles carry, is ignored). Bytes
 * that start like PEM are read as PEM, anything else must be exactly one DER certificate. Returns
 * DER, which is what the verifier compares with a document's `cabundle[0]`.
 * @throws {AttestationError} `ERR_POLICY_INVALID`, naming `label` and what is wrong with it: a root
 *   that cannot be read is a mistake in the policy, not an untrusted enclave.
 */
export function rootCertificatesToDer(
  input: RootCertificateInput | readonly RootCertificateInput[],
  label = 'roots',
): Uint8Array[] {
  const inputs: readonly RootCertificateInput[] = Array.isArray(input)
    ? (input as readonly RootCertificateInput[])
    : [input as RootCertificateInput];
  const invalid = (message: string) => new AttestationError('ERR_POLICY_INVALID', message);
  const result: Uint8Array[] = [];
  inputs.forEach((entry, position) => {
    const name = inputs.length === 1 ? label : `${label}[${position}]`;
    if (typeof entry !== 'string' && !(entry instanceof Uint8Array))
      throw invalid(`${name} is neither PEM text nor DER bytes`);
    const size = typeof entry === 'string' ? entry.length : entry.byteLength;
    if (size === 0) throw invalid(`${name} is empty`);
    if (size > MAX_ROOT_INPUT_BYTES) throw invalid(`${name} is larger than ${MAX_ROOT_INPUT_BYTES} bytes`);
    const text =
      typeof entry === 'string'
        ? entry
        : looksLikePem(entry)
          ? Buffer.from(entry).toString('latin1')
          : undefined;
    if (text === undefined) {
      result.push(derCertificate(entry as Uint8Array, name, invalid));
    } else {
      result.push(...pemCertificates(text, name, invalid));
    }
    if (result.length > MAX_ROOT_CERTIFICATES) throw invalid(`more than ${MAX_ROOT_CERTIFICATES} roots`);
  });
  if (result.length === 0) throw invalid(`${label} lists no certificate`);
  return result;
}

/** PEM is text; DER starts with a SEQUENCE tag (0x30). Leading whitespace is allowed in PEM. */
function looksLikePem(bytes: Uint8Array): boolean {
  return Buffer.from(bytes.subarray(0, 256)).toString('latin1').trimStart().startsWith('-----BEGIN');
}

function pemCertificates(
  text: string,
  name: string,
  invalid: (message: string) => AttestationError,
): Uint8Array[] {
  const blocks = [...text.matchAll(PEM_BLOCK)];
  const begins = text.split('-----BEGIN ').length - 1;
  if (blocks.length === 0) {
    throw invalid(
      begins === 0
        ? `${name} holds no PEM certificate (no "-----BEGIN CERTIFICATE-----" line) and is not DER`
        : `${name} holds a PEM block that is not a complete CERTIFICATE block`,
    );
  }
  if (begins !== blocks.length) {
    throw invalid(
      `${name} holds a PEM block that is not a complete CERTIFICATE block (a key, or a cut copy)`,
    );
  }
  return blocks.map((block, index) => {
    const body = (block[1] ?? '').replace(/\s+/g, '');
    if (!/^[A-Za-z0-9+/]+={0,2}$/.test(body)) {
      throw invalid(`certificate ${index + 1} of ${name} is not base64 between its PEM lines`);
    }
    return derCertificate(
      new Uint8Array(Buffer.from(body, 'base64')),
      `certificate ${index + 1} of ${name}`,
      invalid,
    );
  });
}

function derCertificate(
  der: Uint8Array,
  name: string,
  invalid: (message: string) => AttestationError,
): Uint8Array {
  let raw: Buffer;
  try {
    raw = new X509Certificate(Buffer.from(der)).raw;
  } catch {
    throw invalid(`${name} is not an X.509 certificate (PEM or DER)`);
  }
  // Trailing bytes would be ignored by the parser; a root must be exactly one certificate.
  if (raw.byteLength !== der.byteLength) throw invalid(`${name} has bytes after its certificate`);
  return new Uint8Array(raw);
}

function pinnedDer(pem: string, sha256: string): Uint8Array {
  const der = certificatePemToDer(pem);
  // A corrupted copy of the root must stop the program, not silently trust something else.
  if (createHash('sha256').update(der).digest('hex') !== sha256) {
    throw new Error('the built-in AWS Nitro root certificate does not match its pinned hash');
  }
  return der;
}
