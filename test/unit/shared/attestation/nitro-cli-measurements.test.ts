/**
 * The operator's `nitro-cli build-enclave` output becomes the PCR pins a client trusts, so a file
 * that could pin the wrong thing (another hash, a merged index, no PCR at all) must be refused.
 */
import { describe, expect, it } from 'vitest';
import {
  MAX_MEASUREMENTS_JSON_BYTES,
  parseNitroCliMeasurements,
} from '../../../../shared/attestation/nitro-cli-measurements.ts';
import { codeOf } from '../../../helpers/codes.ts';

const PCR0 = 'a1'.repeat(48);
const PCR1 = 'b2'.repeat(48);
const PCR2 = 'c3'.repeat(48);

/** nitro-cli's shape, as `nitro-cli build-enclave` prints it. */
const NITRO_CLI_OUTPUT = JSON.stringify({
  Measurements: { HashAlgorithm: 'Sha384 { ... }', PCR0, PCR1, PCR2 },
});

describe('parseNitroCliMeasurements', () => {
  it('reads the PCRs of nitro-cli output, and of the inner object alone', () => {
    for (const json of [NITRO_CLI_OUTPUT, JSON.stringify({ PCR0, PCR8: PCR1 })]) {
      const pcrs = parseNitroCliMeasurements(json);
      expect(Buffer.from(pcrs.get(0) ?? []).toString('hex')).toBe(PCR0);
    }
    expect([...parseNitroCliMeasurements(NITRO_CLI_OUTPUT).keys()]).toEqual([0, 1, 2]);
    expect([...parseNitroCliMeasurements(JSON.stringify({ PCR0, PCR8: PCR1 })).keys()]).toEqual([0, 8]);
  });

  it.each<[string, string]>([
    ['more than the size bound', JSON.stringify({ PCR0, pad: ' '.repeat(MAX_MEASUREMENTS_JSON_BYTES) })],
    ['text that is not JSON', '{"PCR0": '],
    ['a JSON array', JSON.stringify([PCR0])],
    ['a JSON string', JSON.stringify(PCR0)],
    ['null', 'null'],
    ['Measurements that are an array', JSON.stringify({ Measurements: [PCR0] })],
    ['another hash algorithm', JSON.stringify({ HashAlgorithm: 'Sha256 { ... }', PCR0 })],
    ['a numeric hash algorithm', JSON.stringify({ HashAlgorithm: 384, PCR0 })],
    ['an unknown key', JSON.stringify({ PCR0, Extra: 'x' })],
    ['a PCR with a leading zero (would merge with PCR0)', JSON.stringify({ PCR0, PCR00: PCR1 })],
    ['PCR32', JSON.stringify({ PCR0, PCR32: PCR1 })],
    ['PCR100', JSON.stringify({ PCR0, PCR100: PCR1 })],
    ['a numeric PCR value', JSON.stringify({ PCR0: 1 })],
    ['a PCR of 47 bytes', JSON.stringify({ PCR0: 'a1'.repeat(47) })],
    ['a PCR that is not hex', JSON.stringify({ PCR0: 'zz'.repeat(48) })],
    ['a PCR of odd length', JSON.stringify({ PCR0: `${PCR0}0` })],
    ['no PCR', JSON.stringify({ HashAlgorithm: 'Sha384 { ... }' })],
    ['"__proto__" as an own key', '{"PCR0":"' + PCR0 + '","__proto__":"' + PCR1 + '"}'],
    ['"constructor" as a key', JSON.stringify({ PCR0, constructor: PCR1 })],
  ])('refuses %s with ERR_POLICY_INVALID', (_what, json) => {
    expect(codeOf(() => parseNitroCliMeasurements(json))).toBe('ERR_POLICY_INVALID');
  });
});
