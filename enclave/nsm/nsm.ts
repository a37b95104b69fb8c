/**
 * The Nitro Secure Module as the enclave sees it: one interface, two implementations (the real
 * `/dev/nsm` device and the simulation), chosen at start-up by `enclave/main`.
 */
import type { KeyObject } from 'node:crypto';

/** The NSM has 32 platform configuration registers. */
export const NSM_PCR_COUNT = 32;

/** PCR0–15 are measured and locked by the platform at boot; the application may use 16–31. */
export const NSM_FIRST_APPLICATION_PCR = 16;

/** Largest `user_data`, `nonce` or `public_key` the NSM accepts, and largest PCR extension input. */
export const NSM_MAX_INPUT_BYTES = 1024;

/** How many bytes one `GetRandom` call returns. */
export const NSM_RANDOM_BYTES = 256;

/** Optional fields of an attestation request; each at most {@link NSM_MAX_INPUT_BYTES}. */
export interface AttestationRequest {
  readonly userData?: Uint8Array;
  readonly nonce?: Uint8Array;
  readonly publicKey?: Uint8Array;
}

/** A PCR's state. */
export interface PcrDescription {
  readonly locked: boolean;
  readonly data: Uint8Array;
}

/** The PCR hash the NSM reports (`api::Digest`); Nitro uses SHA384. */
export type NsmDigest = 'SHA256' | 'SHA384' | 'SHA512';

/** What `DescribeNSM` reports (aws-nitro-enclaves-nsm-api `Response::DescribeNSM`). */
export interface NsmDescription {
  readonly versionMajor: number;
  readonly versionMinor: number;
  readonly versionPatch: number;
  readonly moduleId: string;
  readonly maxPcrs: number;
  /** Indices of the locked PCRs, ascending. */
  readonly lockedPcrs: readonly number[];
  readonly digest: NsmDigest;
}

/** The NSM operations nitro-infer uses. Every failure is an `NsmError`. */
export interface Nsm {
  /** Returns a signed attestation document (COSE_Sign1 bytes). */
  attest(request: AttestationRequest): Promise<Uint8Array>;
  describePcr(index: number): Promise<PcrDescription>;
  /** Extends PCR `index` with `data` and returns its new value. */
  extendPcr(index: number, data: Uint8Array): Promise<Uint8Array>;
  lockPcr(index: number): Promise<void>;
  /** Locks PCRs 0 to `range - 1`. */
  lockPcrs(range: number): Promise<void>;
  /** Returns {@link NSM_RANDOM_BYTES} bytes from the NSM's generator. */
  getRandom(): Promise<Uint8Array>;
  /** The module's version, identity, PCR count and locked PCRs. */
  describeNsm(): Promise<NsmDescription>;
}

/** The key and certificates an NSM signs with. */
export interface NsmSigningIdentity {
  readonly privateKey: KeyObject;
  /** Leaf certificate (DER). */
  readonly certificate: Uint8Array;
  /** `[root, …intermediates]` (DER). */
  readonly cabundle: readonly Uint8Array[];
  /** When the leaf expires, in milliseconds since the epoch. */
  readonly notAfter: number;
}

/** Where a simulated NSM gets a current signing identity (the simulated PKI, in `sim/`). */
export interface NsmSigningIdentitySource {
  signingIdentity(now: number): NsmSigningIdentity;
}
