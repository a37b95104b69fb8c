/**
 * The certificate chain of an attestation document: `cabundle[0]` must be byte-equal to a pinned
 * root, then each certificate (cabundle in order, the leaf `certificate` last) must be issued and
 * signed by the one before it, within that issuer's constraints, and valid at the verification time.
 */
import { X509Certificate, createHash, timingSafeEqual } from 'node:crypto';
import { AttestationError } from '../errors.ts';
import { KEY_USAGE, OID_ECDSA_WITH_SHA384, readCertificateProfile } from './certificate-profile.ts';
import type { CertificateProfile } from './certificate-profile.ts';
import type { KeyObject } from 'node:crypto';

interface ChainLink {
  /** SHA-256 of the DER, the certificate's identity in the caches below. */
  readonly id: string;
  readonly certificate: X509Certificate;
  readonly profile: CertificateProfile;
}

/**
 * Verifies `certificate` up through `cabundle` to a pinned root and returns the leaf.
 * @param roots DER encodings of the trusted roots; `cabundle[0]` must equal one of them byte for byte.
 * @param at the verification instant (milliseconds since the epoch).
 * @throws {AttestationError} `ERR_ATTESTATION_ROOT_UNTRUSTED`, `ERR_ATTESTATION_CERTIFICATE_INVALID`,
 *   `ERR_ATTESTATION_CHAIN_INVALID`, `ERR_ATTESTATION_CERTIFICATE_NOT_YET_VALID` or
 *   `ERR_ATTESTATION_CERTIFICATE_EXPIRED`.
 */
export function verifyCertificateChain(
  cabundle: readonly Uint8Array[],
  certificate: Uint8Array,
  roots: readonly Uint8Array[],
  at: number,
): X509Certificate {
  const [root] = cabundle;
  if (root === undefined || !roots.some((trusted) => bytesEqual(trusted, root))) {
    throw new AttestationError(
      'ERR_ATTESTATION_ROOT_UNTRUSTED',
      'cabundle[0] is not a pinned root certificate',
    );
  }
  const chain = [...cabundle, certificate].map((der, index) => readLink(der, index === cabundle.length));

  for (let index = 1; index < chain.length; index++) {
    const issuer = chain[index - 1] as ChainLink;
    const subject = chain[index] as ChainLink;
    const name = index === chain.length - 1 ? 'leaf certificate' : `cabundle[${index}]`;
    if (!issuer.profile.isCertificateAuthority || !issuer.profile.keyUsage?.has(KEY_USAGE.keyCertSign)) {
      throw chainInvalid(`the issuer of the ${name} is not a certificate authority`);
    }
    // pathLenConstraint counts the CA certificates that may follow the issuer (RFC 5280 4.2.1.9).
    const caCertificatesBelow = chain.length - 2 - (index - 1);
    if (issuer.profile.pathLength !== undefined && caCertificatesBelow > issuer.profile.pathLength) {
      throw chainInvalid(`the ${name} exceeds its issuer's path length constraint`);
    }
    if (!subject.certificate.checkIssued(issuer.certificate)) {
      throw chainInvalid(`the ${name} names a different issuer`);
    }
    if (!signatureVerified(issuer, subject)) {
      throw chainInvalid(`the signature on the ${name} does not verify`);
    }
  }
  const leaf = chain[chain.length - 1] as ChainLink;
  if (leaf.profile.isCertificateAuthority) throw chainInvalid('the leaf certificate must not be a CA');
  if (leaf.profile.keyUsage !== undefined && !leaf.profile.keyUsage.has(KEY_USAGE.digitalSignature)) {
    throw chainInvalid('the leaf certificate is not allowed to sign');
  }

  for (const [index, link] of chain.entries()) {
    const name = index === chain.length - 1 ? 'the leaf certificate' : `cabundle[${index}]`;
    if (at < Date.parse(link.certificate.validFrom)) {
      throw new AttestationError(
        'ERR_ATTESTATION_CERTIFICATE_NOT_YET_VALID',
        `${name} is not valid before ${link.certificate.validFrom}`,
      );
    }
    if (at > Date.parse(link.certificate.validTo)) {
      throw new AttestationError(
        'ERR_ATTESTATION_CERTIFICATE_EXPIRED',
        `${name} expired at ${link.certificate.validTo}`,
      );
    }
  }
  return leaf.certificate;
}

/**
 * Results that depend only on certificate bytes, kept so that a verifier seeing many documents from
 * the same NSM (the common case: the chain changes every few hours) does not redo them. Each P-384
 * signature check costs about 0.7 ms here and a chain has four. Validity times and everything that
 * depends on the clock or the document are checked on every call; only pure functions of the bytes
 * are cached, so a cached answer is the answer a fresh computation would give.
 */
const MAX_CACHED_CERTIFICATES = 512;
const parsedCertificates = new Map<string, ChainLink>();
const verifiedSignatures = new Map<string, true>();

function remember<V>(cache: Map<string, V>, key: string, value: V): void {
  if (cache.size >= MAX_CACHED_CERTIFICATES) cache.delete(cache.keys().next().value as string);
  cache.set(key, value);
}

function signatureVerified(issuer: ChainLink, subject: ChainLink): boolean {
  const key = `${issuer.id}:${subject.id}`;
  if (verifiedSignatures.has(key)) return true;
  let valid: boolean;
  try {
    valid = subject.certificate.verify(issuer.certificate.publicKey);
  } catch {
    valid = false; // OpenSSL throws on some malformed signatures instead of answering false
  }
  if (!valid) return false;
  remember(verifiedSignatures, key, true);
  return true;
}

function readLink(der: Uint8Array, isLeaf: boolean): ChainLink {
  const id = createHash('sha256').update(der).digest('hex');
  const cached = parsedCertificates.get(id);
  if (cached !== undefined) return cached;
  const link = parseLink(id, der, isLeaf);
  remember(parsedCertificates, id, link);
  return link;
}

function parseLink(id: string, der: Uint8Array, isLeaf: boolean): ChainLink {
  let certificate: X509Certificate;
  let profile: CertificateProfile;
  let key: KeyObject;
  try {
    certificate = new X509Certificate(der);
    profile = readCertificateProfile(der);
    // Node decodes the key lazily: a corrupt key surfaces here, not at parse time.
    key = certificate.publicKey;
  } catch (error) {
    throw certificateInvalid(
      `${isLeaf ? 'leaf certificate' : 'a cabundle entry'} is not a valid certificate`,
      error,
    );
  }
  if (profile.signatureAlgorithm !== OID_ECDSA_WITH_SHA384) {
    throw certificateInvalid(
      `certificate signature algorithm ${profile.signatureAlgorithm} is not ecdsa-with-SHA384`,
    );
  }
  if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'secp384r1') {
    throw certificateInvalid('certificate key is not an ECDSA P-384 key');
  }
  if (profile.unknownCriticalExtensions.length > 0) {
    throw certificateInvalid(
      `certificate has unknown critical extensions ${profile.unknownCriticalExtensions.join(', ')}`,
    );
  }
  return { id, certificate, profile };
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  return a.byteLength === b.byteLength && timingSafeEqual(a, b);
}

function chainInvalid(message: string): AttestationError {
  return new AttestationError('ERR_ATTESTATION_CHAIN_INVALID', message);
}

function certificateInvalid(message: string, cause?: unknown): AttestationError {
  return new AttestationError(
    'ERR_ATTESTATION_CERTIFICATE_INVALID',
    message,
    cause === undefined ? undefined : { cause },
  );
}

/** Forgets every cached parse and signature result (for benchmarks that measure a cold verifier). */
export function clearCertificateCache(): void {
  parsedCertificates.clear();
  verifiedSignatures.clear();
}
