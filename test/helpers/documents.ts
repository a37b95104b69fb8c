/** Taking attestation documents apart and putting them back together, for mutation tests. */
import { decode, encode } from 'cbor2';

export type CoseParts = [Uint8Array, Map<unknown, unknown>, Uint8Array, Uint8Array];

export function coseParts(document: Uint8Array): CoseParts {
  return decode(document, { preferMap: true }) as CoseParts;
}

export function encodeCose(parts: readonly unknown[]): Uint8Array {
  return encode(parts);
}

export function payloadOf(document: Uint8Array): Map<string, unknown> {
  return decode(coseParts(document)[2], { preferMap: true }) as Map<string, unknown>;
}

/** The document with its payload changed (and its signature therefore stale). */
export function withPayload(
  document: Uint8Array,
  change: (payload: Map<string, unknown>) => void,
): Uint8Array {
  const parts = coseParts(document);
  const payload = decode(parts[2], { preferMap: true }) as Map<string, unknown>;
  change(payload);
  parts[2] = encode(payload);
  return encodeCose(parts);
}

export function flipBit(bytes: Uint8Array, offset: number, bit = 0): Uint8Array {
  const copy = new Uint8Array(bytes);
  copy[offset]! ^= 1 << bit;
  return copy;
}

export function indexOf(haystack: Uint8Array, needle: Uint8Array): number {
  return Buffer.from(haystack).indexOf(Buffer.from(needle));
}
