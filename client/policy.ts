/**
 * What a client insists on before it trusts an enclave: expected PCRs (or a nitro-cli `pcrs.json`),
 * trusted roots (AWS's built in; the simulated root only when given), the maximum age of a document,
 * and whether debug-mode enclaves are acceptable (never by default: their memory is readable).
 */
import {
  AWS_NITRO_ROOT_G1_DER,
  normalizeExpectedPcrs,
  parseNitroCliMeasurements,
} from '../shared/attestation/index.ts';
import type { ExpectedPcrs } from '../shared/attestation/index.ts';
import { AttestationError } from '../shared/errors.ts';

/** A client's verification policy. */
export interface ClientPolicy {
  /** PCRs that must match; or the text of a nitro-cli `pcrs.json` / describe-eif output. */
  readonly pcrs: ExpectedPcrs | string;
  /** Trusted roots (DER). Default: the AWS Nitro Enclaves root G1 only. */
  readonly roots?: readonly Uint8Array[];
  /** Oldest acceptable attestation document, ms. Default 5 minutes. */
  readonly maxAgeMs?: number;
  /** Re-attest when the cached attestation is older than this, ms. Default 4 minutes. */
  readonly reattestAfterMs?: number;
  /** Accept debug-mode documents. Default false. */
  readonly allowDebug?: boolean;
}

/** A policy with every default applied and the PCRs validated. */
export interface ResolvedPolicy {
  readonly expectedPcrs: ReadonlyMap<number, Uint8Array>;
  readonly roots: readonly Uint8Array[];
  readonly maxAgeMs: number;
  readonly reattestAfterMs: number;
  readonly allowDebug: boolean;
}

export const DEFAULT_MAX_AGE_MS = 5 * 60_000;
export const DEFAULT_REATTEST_AFTER_MS = 4 * 60_000;

/**
 * Resolves a policy. Refuses an empty PCR list: a client that pins nothing would trust any enclave.
 * @throws {AttestationError} `ERR_POLICY_INVALID`.
 */
export function resolvePolicy(policy: ClientPolicy): ResolvedPolicy {
  const expectedPcrs =
    typeof policy.pcrs === 'string'
      ? parseNitroCliMeasurements(policy.pcrs)
      : normalizeExpectedPcrs(policy.pcrs);
  if (expectedPcrs.size === 0) {
    throw new AttestationError('ERR_POLICY_INVALID', 'a policy must pin at least PCR0');
  }
  const maxAgeMs = policy.maxAgeMs ?? DEFAULT_MAX_AGE_MS;
  return {
    expectedPcrs,
    roots: policy.roots ?? [AWS_NITRO_ROOT_G1_DER],
    maxAgeMs,
    reattestAfterMs: Math.min(policy.reattestAfterMs ?? DEFAULT_REATTEST_AFTER_MS, maxAgeMs),
    allowDebug: policy.allowDebug ?? false,
  };
}
