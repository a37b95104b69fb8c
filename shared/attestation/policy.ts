/**
 * What a verifier expects of a document once its signature is known to be good: PCR values, the
 * nonce it sent, freshness, and whether debug-mode enclaves (whose memory the parent can read) are
 * acceptable.
 */
import { timingSafeEqual } from 'node:crypto';
import { AttestationError } from '../errors.ts';
import type { AttestationDocument } from './document.ts';
import { MAX_PCR_INDEX, PCR_BYTES } from './document.ts';

/** Expected PCR values: index → 48 bytes, as bytes or hex. */
export type ExpectedPcrs =
  ReadonlyMap<number, Uint8Array | string> | Readonly<Record<number | string, Uint8Array | string>>;

/** How far ahead of the verifier's clock a document's timestamp may be before it is refused. */
export const MAX_CLOCK_SKEW_MS = 60_000;

/** PCR0, PCR1 and PCR2 are all zero in debug mode (AWS: "Nitro Enclaves debug mode"). */
export const DEBUG_MODE_PCRS = [0, 1, 2] as const;

/** The policy checks, after the document is authenticated. */
export interface AttestationPolicy {
  /** PCRs that must match exactly; any subset of 0–31. */
  readonly expectedPcrs?: ExpectedPcrs;
  /** The nonce the verifier sent; the document must carry exactly this. */
  readonly nonce?: Uint8Array;
  /** Oldest acceptable document, in milliseconds before the verification time. */
  readonly maxAgeMs?: number;
  /** Accept debug-mode documents (PCR0/1/2 zero). Off by default: such enclaves are not confidential. */
  readonly allowDebug?: boolean;
}

/**
 * Normalizes and validates expected PCRs, so that a typo in a policy fails loudly instead of
 * matching nothing. Two keys naming one index (`0` and `"0"` in a Map, `"0"` and `"00"` in an
 * object) are refused: which of them was meant cannot be known, and a silent winner could be the
 * one an attacker wrote.
 * @throws {AttestationError} `ERR_POLICY_INVALID`.
 */
export function normalizeExpectedPcrs(expected: ExpectedPcrs): ReadonlyMap<number, Uint8Array> {
  const entries = expected instanceof Map ? [...expected.entries()] : Object.entries(expected);
  const result = new Map<number, Uint8Array>();
  for (const [key, value] of entries) {
    const index = typeof key === 'number' ? key : /^\d{1,2}$/.test(key) ? Number(key) : Number.NaN;
    if (!Number.isInteger(index) || index < 0 || index > MAX_PCR_INDEX) {
      throw policyInvalid(`PCR index ${String(key)} is not an integer from 0 to ${MAX_PCR_INDEX}`);
    }
    if (result.has(index)) throw policyInvalid(`PCR${index} is pinned twice`);
    const bytes = typeof value === 'string' ? hexToBytes(value, `PCR${index}`) : value;
    if (!(bytes instanceof Uint8Array) || bytes.byteLength !== PCR_BYTES) {
      throw policyInvalid(`expected PCR${index} must be ${PCR_BYTES} bytes (${PCR_BYTES * 2} hex digits)`);
    }
    result.set(index, bytes);
  }
  return result;
}

/**
 * Merges pins from several sources (a nitro-cli `pcrs.json`, explicit `--expect-pcr` values) into
 * one map. The same value for one index from two sources is one pin; two different values are
 * refused rather than letting the later one win, since either could be the stale or planted one.
 * @throws {AttestationError} `ERR_POLICY_INVALID`.
 */
export function mergeExpectedPcrs(
  sources: readonly ReadonlyMap<number, Uint8Array>[],
): ReadonlyMap<number, Uint8Array> {
  const merged = new Map<number, Uint8Array>();
  for (const source of sources) {
    for (const [index, value] of source) {
      const earlier = merged.get(index);
      if (earlier !== undefined && !Buffer.from(earlier).equals(Buffer.from(value))) {
        throw policyInvalid(`PCR${index} is pinned to two different values`);
      }
      merged.set(index, value);
    }
  }
  return merged;
}

/** True when PCR0, PCR1 and PCR2 are all zero, which is how the NSM marks a debug-mode enclave. */
export function isDebugMode(document: AttestationDocument): boolean {
  return DEBUG_MODE_PCRS.every((index) => document.pcrs.get(index)?.every((byte) => byte === 0) ?? false);
}

/**
 * Applies `policy` to an authenticated document at time `at`.
 * @throws {AttestationError} `ERR_ATTESTATION_DEBUG_MODE`, `ERR_ATTESTATION_PCR_MISMATCH`,
 *   `ERR_ATTESTATION_NONCE_MISMATCH`, `ERR_ATTESTATION_STALE`, `ERR_ATTESTATION_FROM_FUTURE`.
 */
export function checkPolicy(
  document: AttestationDocument,
  policy: AttestationPolicy,
  expectedPcrs: ReadonlyMap<number, Uint8Array>,
  at: number,
): void {
  if (isDebugMode(document) && policy.allowDebug !== true) {
    throw new AttestationError(
      'ERR_ATTESTATION_DEBUG_MODE',
      'the document comes from a debug-mode enclave (PCR0/1/2 are zero) and debug mode is not allowed',
    );
  }
  for (const [index, expected] of expectedPcrs) {
    const actual = document.pcrs.get(index);
    if (actual === undefined || !timingSafeEqual(actual, expected)) {
      // Both values in full: PCRs are public measurements, and the operator's next step is to
      // compare them with a build's pcrs.json (a stale pin, or another image).
      const want = Buffer.from(expected).toString('hex');
      throw new AttestationError(
        'ERR_ATTESTATION_PCR_MISMATCH',
        actual === undefined
          ? `PCR${index} is absent from the document (expected ${want})`
          : `PCR${index} does not match: expected ${want}, the document has ${Buffer.from(actual).toString('hex')}`,
      );
    }
  }
  if (policy.nonce !== undefined) {
    const nonce = document.nonce;
    if (
      nonce === undefined ||
      nonce.byteLength !== policy.nonce.byteLength ||
      !timingSafeEqual(nonce, policy.nonce)
    ) {
      throw new AttestationError(
        'ERR_ATTESTATION_NONCE_MISMATCH',
        'the document does not carry the expected nonce',
      );
    }
  }
  if (policy.maxAgeMs !== undefined) {
    if (document.timestamp > at + MAX_CLOCK_SKEW_MS) {
      throw new AttestationError(
        'ERR_ATTESTATION_FROM_FUTURE',
        `the document is dated ${document.timestamp - at} ms after the verification time`,
      );
    }
    if (at - document.timestamp > policy.maxAgeMs) {
      throw new AttestationError(
        'ERR_ATTESTATION_STALE',
        `the document is ${at - document.timestamp} ms old; at most ${policy.maxAgeMs} ms is accepted`,
      );
    }
  }
}

/**
 * Decodes a hex string of even length.
 * @throws {AttestationError} `ERR_POLICY_INVALID`.
 */
export function hexToBytes(hex: string, what: string): Uint8Array {
  const digits = hex.startsWith('0x') ? hex.slice(2) : hex;
  if (digits.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(digits)) {
    throw policyInvalid(`${what} is not a hex string`);
  }
  return new Uint8Array(Buffer.from(digits, 'hex'));
}

function policyInvalid(message: string): AttestationError {
  return new AttestationError('ERR_POLICY_INVALID', message);
}
