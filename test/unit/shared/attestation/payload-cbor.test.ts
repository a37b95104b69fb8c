/**
 * The attestation payload through the strict decoder: a re-encoded duplicate field, a float or a
 * bignum where AWS's format says unsigned integer is refused, each with a negative control that
 * passes the same parser with the honest encoding.
 */
import { describe, expect, it } from 'vitest';
import { encodeCbor } from '../../../../shared/cbor.ts';
import { parseAttestationPayload } from '../../../../shared/attestation/document.ts';
import { isNitroInferError } from '../../../../shared/errors.ts';
import { codeOf } from '../../../helpers/codes.ts';

const hex = (text: string) => new Uint8Array(Buffer.from(text.replace(/\s+/g, ''), 'hex'));

/** Raw map entries: each key and value are already-encoded CBOR, so any encoding can be injected. */
function rawMap(entries: readonly (readonly [Uint8Array, Uint8Array])[]): Uint8Array {
  return Buffer.concat([Buffer.from([0xa0 + entries.length]), ...entries.flat()]);
}

const PCRS = new Map(Array.from({ length: 16 }, (_, index) => [index, new Uint8Array(48).fill(index)]));
const TIMESTAMP = encodeCbor(1_724_191_161_424);

function payload(
  overrides: { timestamp?: Uint8Array; pcrs?: Uint8Array; extra?: [Uint8Array, Uint8Array] } = {},
) {
  const entries: [Uint8Array, Uint8Array][] = [
    [encodeCbor('module_id'), encodeCbor('i-0123456789abcdef0-enc0123456789abcdef')],
    [encodeCbor('digest'), encodeCbor('SHA384')],
    [encodeCbor('timestamp'), overrides.timestamp ?? TIMESTAMP],
    [encodeCbor('pcrs'), overrides.pcrs ?? encodeCbor(PCRS)],
    [encodeCbor('certificate'), encodeCbor(new Uint8Array([0x30]))],
    [encodeCbor('cabundle'), encodeCbor([new Uint8Array([0x30])])],
    [encodeCbor('public_key'), encodeCbor(null)],
    [encodeCbor('nonce'), encodeCbor(new Uint8Array(16).fill(1))],
  ];
  if (overrides.extra) entries.push(overrides.extra);
  return rawMap(entries);
}

function causeCode(action: () => unknown): string | undefined {
  try {
    action();
  } catch (error) {
    const cause = (error as { cause?: unknown }).cause;
    return isNitroInferError(cause) ? cause.code : undefined;
  }
  return undefined;
}

describe('attestation payload under the strict decoder', () => {
  it('negative control: the honest payload parses', () => {
    expect(parseAttestationPayload(payload()).nonce).toEqual(new Uint8Array(16).fill(1));
  });

  it('refuses a second `nonce` written with a non-shortest key (78 05 …)', () => {
    const attack = payload({ extra: [hex('78 05 6e6f6e6365'), encodeCbor(new Uint8Array(16).fill(2))] });
    expect(codeOf(() => parseAttestationPayload(attack))).toBe('ERR_ATTESTATION_PAYLOAD_INVALID');
    expect(causeCode(() => parseAttestationPayload(attack))).toBe('ERR_CBOR_DUPLICATE_KEY');
  });

  it('refuses a PCR index repeated as a uint16 (19 0000)', () => {
    const pcrs = rawMap([
      [encodeCbor(0), encodeCbor(new Uint8Array(48))],
      [hex('19 0000'), encodeCbor(new Uint8Array(48).fill(9))],
    ]);
    expect(causeCode(() => parseAttestationPayload(payload({ pcrs })))).toBe('ERR_CBOR_DUPLICATE_KEY');
  });

  it.each([
    ['a double', 'fb 4278 f1a3 cd3c 5000'],
    ['a half float 1.0', 'f9 3c00'],
  ])('refuses a timestamp written as %s', (_name, encoded) => {
    const attack = payload({ timestamp: hex(encoded) });
    expect(codeOf(() => parseAttestationPayload(attack))).toBe('ERR_ATTESTATION_PAYLOAD_INVALID');
    expect(causeCode(() => parseAttestationPayload(attack))).toBe('ERR_CBOR_FLOAT_REFUSED');
  });

  it('refuses a PCR index written as a float', () => {
    const pcrs = rawMap([[hex('f9 0000'), encodeCbor(new Uint8Array(48))]]);
    expect(causeCode(() => parseAttestationPayload(payload({ pcrs })))).toBe('ERR_CBOR_FLOAT_REFUSED');
  });

  it.each([
    ['a tag-2 bignum', 'c2 46 0191 71cd 3c50'],
    ['a negative integer', '3b 0000 0191 71cd 3c4f'],
    ['a uint64 beyond 2^53', '1b ffff ffff ffff ffff'],
  ])('refuses a timestamp written as %s with a typed code', (_name, encoded) => {
    expect(codeOf(() => parseAttestationPayload(payload({ timestamp: hex(encoded) })))).toBe(
      'ERR_ATTESTATION_PAYLOAD_INVALID',
    );
  });

  it.each([
    ['a negative index', '20'],
    ['a bignum index', 'c2 41 00'],
  ])('refuses a PCR key written as %s with a typed code', (_name, encoded) => {
    const pcrs = rawMap([[hex(encoded), encodeCbor(new Uint8Array(48))]]);
    expect(codeOf(() => parseAttestationPayload(payload({ pcrs })))).toBe('ERR_ATTESTATION_PAYLOAD_INVALID');
  });
});
