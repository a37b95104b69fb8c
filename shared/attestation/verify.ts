/**
 * Verification of a Nitro attestation document, in the order of DESIGN.md 4.4, failing closed:
 * COSE shape → payload fields → chain to a pinned root at the verification time → ES384 signature
 * over the payload bytes as received → the document's timestamp inside the leaf's validity →
 * policy (debug mode, PCRs, nonce, freshness).
 *
 * The one verifier serves the client SDK, the KMS simulator and the enclave's own start-up check.
 * Nothing from the document is returned unless every step passed.
 */
import { verify as verifySignature } from 'node:crypto';
import type { X509Certificate } from 'node:crypto';
import { AttestationError } from '../errors.ts';
import { parseCoseSign1, signatureStructure } from './cose-sign1.ts';
import type { AttestationDocument } from './document.ts';
import { parseAttestationPayload } from './document.ts';
import { verifyCertificateChain } from './certificate-chain.ts';
import type { AttestationPolicy } from './policy.ts';
import { checkPolicy, isDebugMode, normalizeExpectedPcrs } from './policy.ts';
import { AWS_NITRO_ROOT_G1_DER } from './root.ts';

/** Options of {@link verifyAttestation}. */
export interface VerifyAttestationOptions extends AttestationPolicy {
  /**
   * Trusted roots (DER). Defaults to the AWS Nitro Enclaves root G1 alone; pass others (such as the
   * simulated root) only explicitly. Replaces the default rather than adding to it.
   */
  readonly roots?: readonly Uint8Array[];
  /** The verification instant; defaults to now. Real documents' leaf certificates live about three hours. */
  readonly at?: Date | number;
}

/** A document that passed every check. */
export interface VerifiedAttestation {
  readonly document: AttestationDocument;
  /** True when PCR0/1/2 are zero (only possible with `allowDebug`). */
  readonly debugMode: boolean;
  /** The NSM leaf certificate that signed the document. */
  readonly signer: X509Certificate;
}

/**
 * Verifies an attestation document and applies a policy.
 * @throws {AttestationError} with a code naming the first check that failed.
 */
export function verifyAttestation(
  bytes: Uint8Array,
  options: VerifyAttestationOptions = {},
): VerifiedAttestation {
  const at = verificationTime(options.at);
  const expectedPcrs = normalizeExpectedPcrs(options.expectedPcrs ?? {});
  if (options.maxAgeMs !== undefined && !(Number.isFinite(options.maxAgeMs) && options.maxAgeMs >= 0)) {
    throw new AttestationError(
      'ERR_POLICY_INVALID',
      'maxAgeMs must be a non-negative number of milliseconds',
    );
  }

  // Snapshot the input: a caller's buffer changing under us must not change what we verified.
  const snapshot = new Uint8Array(bytes);
  const cose = parseCoseSign1(snapshot);
  const document = parseAttestationPayload(cose.payload);
  const signer = verifyCertificateChain(
    document.cabundle,
    document.certificate,
    options.roots ?? [AWS_NITRO_ROOT_G1_DER],
    at,
  );

  const signed = signatureStructure(cose.protectedHeader, cose.payload);
  if (!signatureValid(signed, signer, cose.signature)) {
    throw new AttestationError('ERR_ATTESTATION_SIGNATURE_INVALID', 'the COSE signature does not verify');
  }

  checkTimestampInLeafValidity(document.timestamp, signer);
  checkPolicy(document, options, expectedPcrs, at);
  return { document, debugMode: isDebugMode(document), signer };
}

function signatureValid(signed: Uint8Array, signer: X509Certificate, signature: Uint8Array): boolean {
  try {
    return verifySignature('sha384', signed, { key: signer.publicKey, dsaEncoding: 'ieee-p1363' }, signature);
  } catch {
    return false; // fail closed: an error from OpenSSL is a signature that did not verify
  }
}

/**
 * The NSM signs with a leaf it was issued for a few hours, so the time it writes into the document
 * lies within that leaf's validity. A document dated outside it is not an NSM's: its key signed
 * outside the window its certificate allows (a key kept past its certificate, or a date chosen by
 * whoever holds the key). A caller that sets no maximum age (`attest verify` without `--max-age`)
 * would otherwise never look at the date at all.
 */
function checkTimestampInLeafValidity(timestamp: number, signer: X509Certificate): void {
  const notBefore = Date.parse(signer.validFrom);
  const notAfter = Date.parse(signer.validTo);
  if (timestamp < notBefore || timestamp > notAfter) {
    throw new AttestationError(
      'ERR_ATTESTATION_TIMESTAMP_INVALID',
      `the document is dated ${new Date(timestamp).toISOString()}, outside its signing certificate's validity`,
    );
  }
}

function verificationTime(at: Date | number | undefined): number {
  const time = at === undefined ? Date.now() : typeof at === 'number' ? at : at.getTime();
  if (!Number.isFinite(time))
    throw new AttestationError('ERR_POLICY_INVALID', 'the verification time is not a valid time');
  return time;
}
