export { createClient, NitroInferClient } from './client.ts';
export type {
  Attestation,
  CallOptions,
  ClientOptions,
  ForwardRequest,
  ForwardResult,
  InferenceResult,
} from './client.ts';
export { resolvePolicy, DEFAULT_MAX_AGE_MS, DEFAULT_REATTEST_AFTER_MS } from './policy.ts';
export type { ClientPolicy, PcrSource, ResolvedPolicy } from './policy.ts';
export { verifyReceipt, RECEIPT_HEADER } from '../shared/receipts.ts';
export type { Receipt, ReceiptExpectations } from '../shared/receipts.ts';
export { float16ToNumbers, numbersToFloat16, responseAsJson } from './tensors.ts';
export type {
  ClientInferenceRequest,
  ClientInferenceResponse,
  ClientOutputTensor,
  ClientTensor,
  InferOptions,
  TypedTensorData,
} from './tensors.ts';
