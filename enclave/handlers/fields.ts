/**
 * Field readers for link requests. Every field of a link frame comes from the parent and is
 * untrusted: each reader checks type and bounds before the value is used, and fails with
 * `ERR_LINK_REQUEST_INVALID` (the connection stays; DESIGN.md 4.5).
 */
import { LinkError } from '../../shared/errors.ts';
import type { NitroInferError } from '../../shared/errors.ts';

/** Model names, as the parent's admin API accepts them. */
export const MAX_MODEL_NAME_LENGTH = 128;

/** A text field of 1 to `maxLength` characters. */
export function requiredString(
  fields: ReadonlyMap<string, unknown>,
  name: string,
  maxLength: number,
): string {
  const value = fields.get(name);
  if (typeof value !== 'string' || value.length === 0 || value.length > maxLength) {
    throw invalidRequest(`${name} must be a string of 1 to ${maxLength} characters`);
  }
  return value;
}

/** A byte field of `min` to `max` bytes, or absent (`undefined` or `null`). */
export function optionalBytes(
  fields: ReadonlyMap<string, unknown>,
  name: string,
  min: number,
  max: number,
): Uint8Array | undefined {
  const value = fields.get(name);
  if (value === undefined || value === null) return undefined;
  if (!(value instanceof Uint8Array) || value.byteLength < min || value.byteLength > max) {
    throw invalidRequest(`${name} must be ${min} to ${max} bytes`);
  }
  return value;
}

/** A byte field of `min` to `max` bytes. */
export function requiredBytes(
  fields: ReadonlyMap<string, unknown>,
  name: string,
  min: number,
  max: number,
): Uint8Array {
  const value = optionalBytes(fields, name, min, max);
  if (value === undefined) throw invalidRequest(`${name} must be ${min} to ${max} bytes`);
  return value;
}

/** The error every malformed request field gives. */
export function invalidRequest(message: string): NitroInferError {
  return new LinkError('ERR_LINK_REQUEST_INVALID', message);
}
