/**
 * What a client insists on before it trusts an enclave: expected PCRs (or a nitro-cli `pcrs.json`),
 * trusted roots (AWS's built in; the simulated root only when given), the maximum age of a document,
 * and whether debug-mode enclaves are acceptable (never by default: their memory is readable).
 */
import {
  AWS_NITRO_ROOT_G1_DER,
  mergeExpectedPcrs,
  normalizeExpectedPcrs,
  parseNitroCliMeasurements,
  rootCertificatesToDer,
} from '../shared/attestation/index.ts';
import type { ExpectedPcrs, RootCertificateInput } from '../shared/attestation/index.ts';
import { AttestationError } from '../shared/errors.ts';

/** One source of pins: expected values by index, or a nitro-cli measurements JSON text. */
export type PcrSource = ExpectedPcrs | string;

/** A client's verification policy. */
export interface ClientPolicy {
  /**
   * PCRs that must match: a map, the text of a nitro-cli `pcrs.json` / describe-eif output, or a
   * list of both kinds (merged; two different values for one index are refused). PCR0 is required.
   */
  readonly pcrs: PcrSource | readonly PcrSource[];
  /**
   * Trusted roots: PEM text (one or several certificates) or DER bytes (Buffer or Uint8Array), or
   * a list of them. Default: the AWS Nitro Enclaves root G1 only. One that cannot be read is
   * `ERR_POLICY_INVALID` when the client is created.
   */
  readonly roots?: RootCertificateInput | readonly RootCertificateInput[];
  /** Oldest acceptable attestation document, ms. Default 5 minutes. */
  readonly maxAgeMs?: number;
  /** Re-attest when the cached attestation is older than this, ms. Default 4 minutes. */
  readonly reattestAfterMs?: number;
  /** Accept debug-mode documents. Default false. */
  readonly allowDebug?: boolean;
  /**
   * Model digests the client insists on: name → SHA-384 (hex) of the plaintext ONNX file, as
   * `nitro-infer seal` prints it. The attestation proves which models the enclave holds, but the
   * parent chooses what it loads (an older version of a model, say); a pinned model whose attested
   * digest differs is refused before anything is sent.
   */
  readonly models?: Readonly<Record<string, string>>;
}

/** A policy with every default applied and the PCRs validated. */
export interface ResolvedPolicy {
  readonly expectedPcrs: ReadonlyMap<number, Uint8Array>;
  readonly roots: readonly Uint8Array[];
  readonly maxAgeMs: number;
  readonly reattestAfterMs: number;
  readonly allowDebug: boolean;
  /** Pinned model digests (lower-case hex), by name. */
  readonly models: ReadonlyMap<string, string>;
}

export const DEFAULT_MAX_AGE_MS = 5 * 60_000;
export const DEFAULT_REATTEST_AFTER_MS = 4 * 60_000;

/**
 * Resolves a policy. Refuses one that does not pin PCR0: PCR0 measures the whole enclave image, and
 * a policy pinning only other PCRs (PCR3, the parent's IAM role; PCR4, its instance) trusts any image
 * the parent chooses to run. Refuses conflicting pins for one index rather than picking one.
 * @throws {AttestationError} `ERR_POLICY_INVALID`.
 */
export function resolvePolicy(policy: ClientPolicy): ResolvedPolicy {
  const sources: readonly PcrSource[] = Array.isArray(policy.pcrs)
    ? (policy.pcrs as readonly PcrSource[])
    : [policy.pcrs as PcrSource];
  const expectedPcrs = mergeExpectedPcrs(
    sources.map((source) =>
      typeof source === 'string' ? parseNitroCliMeasurements(source) : normalizeExpectedPcrs(source),
    ),
  );
  if (!expectedPcrs.has(0)) {
    throw new AttestationError('ERR_POLICY_INVALID', 'a policy must pin at least PCR0');
  }
  const maxAgeMs = policy.maxAgeMs ?? DEFAULT_MAX_AGE_MS;
  const models = new Map<string, string>();
  for (const [name, sha384] of Object.entries(policy.models ?? {})) {
    if (typeof sha384 !== 'string' || !/^[0-9a-fA-F]{96}$/.test(sha384)) {
      throw new AttestationError(
        'ERR_POLICY_INVALID',
        `policy.models pins ${name} to something that is not a SHA-384 in hex`,
      );
    }
    models.set(name, sha384.toLowerCase());
  }
  return {
    models,
    expectedPcrs,
    roots:
      policy.roots === undefined
        ? [AWS_NITRO_ROOT_G1_DER]
        : rootCertificatesToDer(policy.roots, 'policy.roots'),
    maxAgeMs,
    reattestAfterMs: Math.min(policy.reattestAfterMs ?? DEFAULT_REATTEST_AFTER_MS, maxAgeMs),
    allowDebug: policy.allowDebug ?? false,
  };
}
