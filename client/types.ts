/** The SDK's public option and result types (client.ts implements them). */
import type { Receipt } from '../shared/receipts.ts';
import type { Attestation } from './attestation.ts';
import type { ClientPolicy } from './policy.ts';
import type { ClientInferenceResponse } from './tensors.ts';
import type { CallOptions } from './transport.ts';

/** Options of {@link createClient}. */
export interface ClientOptions extends CallOptions {
  /** The parent's base URL, e.g. `https://inference.example.com`. */
  readonly endpoint: string;
  readonly policy: ClientPolicy;
  /** A fetch implementation (tests wrap it to watch traffic). */
  readonly fetch?: typeof fetch;
  /** The verification clock. */
  readonly clock?: () => number;
}

/** An inference answer with its verified receipt. */
export interface InferenceResult {
  readonly response: ClientInferenceResponse;
  readonly receipt: Receipt;
  /** The receipt as received (base64url), to store as proof. */
  readonly receiptEncoded: string;
}

/** One inner HTTP request as {@link NitroInferClient.forward} sends it. */
export interface ForwardRequest {
  readonly method: string;
  /** The inner path, e.g. `/v2/models/dense/infer`. */
  readonly path: string;
  /**
   * Inner request headers that describe the body (lower-case names), e.g. `content-type` and
   * `inference-header-content-length`. Default, with a body: `content-type: application/json`.
   */
  readonly headers?: readonly (readonly [string, string])[];
  readonly body?: Uint8Array;
  /** The model the path names: re-attests when unseen, honours the policy's pins. */
  readonly model?: string;
  /** Refuse, before sending, a model no attestation lists (inference). */
  readonly requireAttested?: boolean;
  /** Refuse a 200 answer that carries no receipt (inference). */
  readonly requireReceipt?: boolean;
}

/** The enclave's answer to a forwarded request, whatever its status. */
export interface ForwardResult {
  readonly status: number;
  readonly headers: readonly (readonly [string, string])[];
  readonly content: Uint8Array;
  readonly attestation: Attestation;
  /** Present when the answer carried a receipt, which then verified. */
  readonly receipt?: Receipt;
  readonly receiptEncoded?: string;
}
