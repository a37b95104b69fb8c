/**
 * The measurements `nitro-cli build-enclave` and `nitro-cli describe-eif` print:
 * `{ "Measurements": { "HashAlgorithm": "Sha384 { ... }", "PCR0": "<96 hex>", "PCR1": …, "PCR2": …, "PCR8": … } }`.
 * The inner object alone (as saved by some tooling) is accepted too.
 */
import { AttestationError } from '../errors.ts';
import { normalizeExpectedPcrs } from './policy.ts';

/** Largest measurements file accepted; nitro-cli's output is well under 1 KiB. */
export const MAX_MEASUREMENTS_JSON_BYTES = 64 * 1024;

/**
 * Reads PCR expectations from nitro-cli's JSON output.
 * @throws {AttestationError} `ERR_POLICY_INVALID`.
 */
export function parseNitroCliMeasurements(json: string): ReadonlyMap<number, Uint8Array> {
  if (json.length > MAX_MEASUREMENTS_JSON_BYTES) throw invalid('the measurements file is too large');
  let parsed: unknown;
  try {
    parsed = JSON.parse(json);
  } catch {
    throw invalid('the measurements file is not JSON');
  }
  // JSON.parse keeps the last of two equal keys; a pcrs.json naming PCR0 twice is refused instead.
  const duplicate = firstDuplicateKey(json);
  if (duplicate !== undefined)
    throw invalid(`the measurements file names ${JSON.stringify(duplicate)} twice`);
  const measurements = isObject(parsed) && isObject(parsed.Measurements) ? parsed.Measurements : parsed;
  if (!isObject(measurements)) throw invalid('the measurements file holds no object');

  const algorithm = measurements.HashAlgorithm;
  if (algorithm !== undefined && (typeof algorithm !== 'string' || !/^sha384\b/i.test(algorithm))) {
    throw invalid(`HashAlgorithm ${JSON.stringify(algorithm)} is not SHA-384`);
  }
  const pcrs: Record<string, string> = {};
  for (const [key, value] of Object.entries(measurements)) {
    if (key === 'HashAlgorithm') continue;
    // No leading zeros: "PCR0" and "PCR00" would name one index twice and the later would win.
    const match = /^PCR(0|[1-9]\d?)$/.exec(key);
    if (match === null || typeof value !== 'string')
      throw invalid(`unexpected measurement ${JSON.stringify(key)}`);
    pcrs[match[1] as string] = value;
  }
  if (Object.keys(pcrs).length === 0) throw invalid('the measurements file names no PCR');
  return normalizeExpectedPcrs(pcrs);
}

/**
 * The first key that occurs twice in one object of `json`, which must already have parsed as JSON.
 * Keys are compared after unescaping (`"PCR\u0030"` is `"PCR0"`). Linear in the text, which the
 * caller has bounded.
 */
function firstDuplicateKey(json: string): string | undefined {
  const objects: (Set<string> | undefined)[] = [];
  for (let index = 0; index < json.length; index++) {
    const character = json[index];
    if (character === '{') objects.push(new Set());
    else if (character === '[') objects.push(undefined);
    else if (character === '}' || character === ']') objects.pop();
    else if (character === '"') {
      let end = index + 1;
      while (json[end] !== '"') end += json[end] === '\\' ? 2 : 1;
      const literal = json.slice(index, end + 1);
      index = end;
      let next = end + 1;
      while (json[next] === ' ' || json[next] === '\t' || json[next] === '\n' || json[next] === '\r') next++;
      const keys = objects[objects.length - 1];
      if (json[next] !== ':' || keys === undefined) continue;
      const key = JSON.parse(literal) as string;
      if (keys.has(key)) return key;
      keys.add(key);
    }
  }
  return undefined;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function invalid(message: string): AttestationError {
  return new AttestationError('ERR_POLICY_INVALID', message);
}
