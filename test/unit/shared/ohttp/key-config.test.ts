/**
 * Key configurations come from the parent (`GET /.well-known/ohttp-gateway`) and from attestation
 * replies before the client trusts them: RFC 9458 section 3 parsing, bounds and the RFC 9540 list,
 * with expected bytes written out by hand.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isNitroInferError } from '../../../../shared/errors.ts';
import {
  MAX_SYMMETRIC_ALGORITHMS,
  decodeKeyConfig,
  decodeKeyConfigList,
  encodeKeyConfig,
} from '../../../../shared/ohttp/key-config.ts';
import { codeOf } from '../../../helpers/codes.ts';

const hex = (text: string): Uint8Array => new Uint8Array(Buffer.from(text.replaceAll(' ', ''), 'hex'));
const toHex = (bytes: Uint8Array): string => Buffer.from(bytes).toString('hex');

const PUBLIC_KEY = '42'.repeat(32);
/** 45 bytes: key_id 7, DHKEM(X25519) 0x0020, 32-byte key, 8 bytes of suites: (HKDF-SHA256, AES-256-GCM), (HKDF-SHA256, ChaCha20). */
const CONFIG = `07 0020 ${PUBLIC_KEY} 0008 0001 0002 0001 0003`;

describe('decodeKeyConfig', () => {
  it('reads the hand-written config, also from a view at an offset into a larger buffer', () => {
    const bytes = hex(CONFIG);
    const padded = new Uint8Array(bytes.byteLength + 5);
    padded.set(bytes, 3);
    for (const input of [bytes, padded.subarray(3, 3 + bytes.byteLength)]) {
      const config = decodeKeyConfig(input);
      expect(config.keyId).toBe(7);
      expect(config.kemId).toBe(0x20);
      expect(toHex(config.publicKey)).toBe(PUBLIC_KEY);
      expect(config.symmetricAlgorithms).toEqual([
        { kdfId: 1, aeadId: 2 },
        { kdfId: 1, aeadId: 3 },
      ]);
    }
  });

  it('drops suites it does not know and keeps the rest', () => {
    const config = decodeKeyConfig(hex(`07 0020 ${PUBLIC_KEY} 000c 0002 0002 0001 0009 0001 0001`));
    expect(config.symmetricAlgorithms).toEqual([{ kdfId: 1, aeadId: 1 }]);
  });

  it.each<[string, string, string]>([
    ['empty', '', 'ERR_OHTTP_MALFORMED'],
    ['two bytes', '07 00', 'ERR_OHTTP_MALFORMED'],
    ['another KEM', `07 0010 ${PUBLIC_KEY} 0004 0001 0002`, 'ERR_OHTTP_KEY_UNKNOWN'],
    ['no room for the suite length', `07 0020 ${PUBLIC_KEY} 00`, 'ERR_OHTTP_MALFORMED'],
    ['an empty suite list', `07 0020 ${PUBLIC_KEY} 0000`, 'ERR_OHTTP_MALFORMED'],
    ['a suite length not a multiple of 4', `07 0020 ${PUBLIC_KEY} 0003 000100`, 'ERR_OHTTP_MALFORMED'],
    [
      `more than ${MAX_SYMMETRIC_ALGORITHMS} suites`,
      `07 0020 ${PUBLIC_KEY} 0104 ${'00010002'.repeat(65)}`,
      'ERR_OHTTP_MALFORMED',
    ],
    ['a suite length past the end', `07 0020 ${PUBLIC_KEY} 0008 0001 0002`, 'ERR_OHTTP_MALFORMED'],
    ['a trailing byte', `${CONFIG} 00`, 'ERR_OHTTP_MALFORMED'],
    ['only unknown suites', `07 0020 ${PUBLIC_KEY} 0004 0001 00ff`, 'ERR_OHTTP_KEY_UNKNOWN'],
  ])('refuses %s', (_what, bytes, code) => {
    expect(codeOf(() => decodeKeyConfig(hex(bytes)))).toBe(code);
  });

  it('encode → decode → encode gives identical bytes; every truncated prefix is refused', () => {
    const config = fc.record({
      keyId: fc.integer({ min: 0, max: 255 }),
      kemId: fc.constant(0x20),
      publicKey: fc.uint8Array({ minLength: 32, maxLength: 32 }),
      symmetricAlgorithms: fc.array(
        fc.record({ kdfId: fc.constant(1), aeadId: fc.integer({ min: 1, max: 3 }) }),
        { minLength: 1, maxLength: MAX_SYMMETRIC_ALGORITHMS },
      ),
    });
    fc.assert(
      fc.property(config, (input) => {
        const bytes = encodeKeyConfig(input);
        expect(toHex(encodeKeyConfig(decodeKeyConfig(bytes)))).toBe(toHex(bytes));
        for (let end = 0; end < bytes.byteLength; end += 1) {
          expect(codeOf(() => decodeKeyConfig(bytes.subarray(0, end)))).toBe('ERR_OHTTP_MALFORMED');
        }
      }),
      { numRuns: 300, interruptAfterTimeLimit: 2_000 },
    );
  });

  it('arbitrary bytes are refused only with typed errors', () => {
    const nearConfig = fc.uint8Array({ maxLength: 80 }).map((tail) => Uint8Array.of(7, 0, 0x20, ...tail));
    fc.assert(
      fc.property(fc.oneof(fc.uint8Array({ maxLength: 80 }), nearConfig), (bytes) => {
        try {
          decodeKeyConfig(bytes);
          decodeKeyConfigList(bytes);
        } catch (error) {
          return isNitroInferError(error);
        }
        return true;
      }),
      { numRuns: 3_000, interruptAfterTimeLimit: 2_000 },
    );
  });
});

describe('decodeKeyConfigList (RFC 9540 section 3)', () => {
  it('splits length-prefixed configs; an empty body is an empty list', () => {
    expect(decodeKeyConfigList(new Uint8Array(0))).toEqual([]);
    const list = decodeKeyConfigList(hex(`0003 aabbcc 0001 dd`));
    expect(list.map(toHex)).toEqual(['aabbcc', 'dd']);
    const one = decodeKeyConfigList(hex(`002d ${CONFIG}`));
    expect(one.map((config) => decodeKeyConfig(config).keyId)).toEqual([7]);
  });

  it.each([
    ['a lone length byte', '00'],
    ['a length past the end', '0004 aabbcc'],
    ['a zero length', '0000'],
    ['a good entry, then a truncated one', '0001 dd 00'],
  ])('refuses %s with ERR_OHTTP_MALFORMED', (_what, bytes) => {
    expect(codeOf(() => decodeKeyConfigList(hex(bytes)))).toBe('ERR_OHTTP_MALFORMED');
  });
});
