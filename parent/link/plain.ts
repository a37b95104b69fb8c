/**
 * Link fields arrive as CBOR maps (`Map`, `Uint8Array`); HTTP answers are JSON. Converts the first
 * into the second — byte strings become base64 — for the few non-secret status fields the parent
 * passes on (model names, digests, tensor metadata).
 */
export function toPlain(value: unknown, depth = 0): unknown {
  if (depth > 16) return null;
  if (value instanceof Uint8Array) return Buffer.from(value).toString('base64');
  if (value instanceof Map) {
    const object: Record<string, unknown> = {};
    for (const [key, entry] of value) object[String(key)] = toPlain(entry, depth + 1);
    return object;
  }
  if (Array.isArray(value)) return value.map((entry) => toPlain(entry, depth + 1));
  if (typeof value === 'bigint') return Number(value);
  return value;
}
