export { SimulatedNsm } from './simulated-nsm.ts';
export type { SimulatedNsmOptions } from './simulated-nsm.ts';
export { NSM_PCR_COUNT, NSM_FIRST_APPLICATION_PCR, NSM_MAX_INPUT_BYTES, NSM_RANDOM_BYTES } from './nsm.ts';
export type {
  Nsm,
  AttestationRequest,
  PcrDescription,
  NsmDescription,
  NsmDigest,
  NsmSigningIdentity,
  NsmSigningIdentitySource,
} from './nsm.ts';
export { extendPcrValue, measure, PCR_BYTES } from './pcr.ts';
