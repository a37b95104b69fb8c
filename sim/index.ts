export { SimulatedNitroPki, NITRO_PKI_LIFETIMES_MS, LEAF_RENEWAL_MARGIN_MS } from './nitro-pki.ts';
export type { NitroPkiJson, NitroPkiOptions } from './nitro-pki.ts';
export { measureEnclaveCodeBundle, ENCLAVE_CODE_BUNDLE } from './code-measurement.ts';
export type { BootMeasurements } from './code-measurement.ts';
export { createSimulatedEnclaveIdentity, PROJECT_ROOT } from './simulated-enclave.ts';
export type { SimulatedEnclaveIdentity, SimulatedEnclaveIdentityOptions } from './simulated-enclave.ts';
export { buildCertificate, KEY_USAGE_BITS } from './x509-builder.ts';
export type { CertificateTemplate, DistinguishedName } from './x509-builder.ts';
