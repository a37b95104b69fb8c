/** The strict DER BOOLEAN reader (X.690 11.1): exactly `01 01 00` or `01 01 ff`. */
import forge from 'node-forge';
import { describe, expect, it } from 'vitest';
import { readAsn1Strict, readDerBoolean } from '../../../shared/asn1.ts';

const read = (hex: string) => readDerBoolean(readAsn1Strict(Buffer.from(hex, 'hex').toString('latin1')));

describe('readDerBoolean', () => {
  it.each([
    ['0101ff', true],
    ['010100', false],
  ])('control: %s → %s', (hex, value) => {
    expect(read(hex)).toBe(value);
  });

  it.each([
    ['010101', 'BER TRUE 01'],
    ['010180', 'BER TRUE 80'],
    ['0102ffff', 'two content bytes'],
    ['0100', 'no content byte'],
    ['0201ff', 'an INTEGER'],
    ['8101ff', 'a context-specific [1]'],
  ])('%s (%s) → refused', (hex) => {
    expect(() => read(hex)).toThrow();
  });

  it('a constructed node or none at all → refused', () => {
    const constructed = forge.asn1.create(forge.asn1.Class.UNIVERSAL, forge.asn1.Type.BOOLEAN, true, []);
    expect(() => readDerBoolean(constructed)).toThrow();
    expect(() => readDerBoolean(undefined)).toThrow();
  });
});
