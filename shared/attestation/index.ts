export { verifyAttestation } from './verify.ts';
export { clearCertificateCache } from './certificate-chain.ts';
export type { VerifyAttestationOptions, VerifiedAttestation } from './verify.ts';
export type { AttestationDocument } from './document.ts';
export {
  parseAttestationPayload,
  MAX_PCR_INDEX,
  PCR_BYTES,
  MAX_OPTIONAL_FIELD_BYTES,
  MAX_CERTIFICATE_BYTES,
} from './document.ts';
export {
  parseCoseSign1,
  signatureStructure,
  ES384_PROTECTED_HEADER,
  MAX_ATTESTATION_DOCUMENT_BYTES,
  COSE_SIGN1_TAG,
} from './cose-sign1.ts';
export type { CoseSign1 } from './cose-sign1.ts';
export {
  checkPolicy,
  isDebugMode,
  mergeExpectedPcrs,
  normalizeExpectedPcrs,
  hexToBytes,
  MAX_CLOCK_SKEW_MS,
} from './policy.ts';
export type { AttestationPolicy, ExpectedPcrs } from './policy.ts';
export { parseNitroCliMeasurements } from './nitro-cli-measurements.ts';
export {
  AWS_NITRO_ROOT_G1_DER,
  AWS_NITRO_ROOT_G1_PEM,
  AWS_NITRO_ROOT_G1_SHA256,
  certificatePemToDer,
  rootCertificatesToDer,
  MAX_ROOT_CERTIFICATES,
  MAX_ROOT_INPUT_BYTES,
} from './root.ts';
export type { RootCertificateInput } from './root.ts';
