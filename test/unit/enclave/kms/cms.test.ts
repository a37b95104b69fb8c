/** CMS unwrapping against every vector in ../shared/fixtures/cms (real KMS output and AWS's own test vectors). */
import { createPrivateKey, generateKeyPairSync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { openCmsEnvelope, parseCmsEnvelope } from '../../../../enclave/kms/cms.ts';
import { isNitroInferError } from '../../../../shared/errors.ts';
import { FIXTURES_ABSENT, HAVE_FIXTURES, fixtureBytes, fixturePath } from '../../../helpers/fixtures.ts';
import { codeOf } from '../../../helpers/codes.ts';

const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString('hex');
const key = (name: string) => createPrivateKey(readFileSync(fixturePath(`cms/${name}`)));

describe.skipIf(!HAVE_FIXTURES)('CMS EnvelopedData from KMS', () => {
  it('the real KMS output (edgebit) yields its expected 32-byte data key', () => {
    const dataKey = openCmsEnvelope(fixtureBytes('cms/kms-cfr-edgebit.ber'), key('kms-cfr-edgebit.key.pem'));
    expect(hex(dataKey)).toBe(hex(fixtureBytes('cms/kms-cfr-edgebit.plaintext.bin')));
    expect(dataKey).toHaveLength(32);
  });

  it.each(['constructed', 'primitive'])(
    'the aws-nitro-enclaves-sdk-c %s vector parses to its expected parts',
    (form) => {
      const envelope = parseCmsEnvelope(fixtureBytes(`cms/kms-cfr-sdkc-${form}.input_ber.bin`));
      expect(hex(envelope.encryptedKey)).toBe(
        hex(fixtureBytes(`cms/kms-cfr-sdkc-${form}.encrypted_key_out.bin`)),
      );
      expect(hex(envelope.iv)).toBe(hex(fixtureBytes(`cms/kms-cfr-sdkc-${form}.iv_out.bin`)));
      expect(hex(envelope.ciphertext)).toBe(hex(fixtureBytes(`cms/kms-cfr-sdkc-${form}.ciphertext_out.bin`)));
      expect(envelope.subjectKeyIdentifier).toHaveLength(32);
    },
  );

  it('the synthetic two-chunk vector decrypts to its 4096-byte plaintext', () => {
    const plaintext = openCmsEnvelope(
      fixtureBytes('cms/synthetic-two-chunks.ber'),
      key('synthetic-two-chunks.key.pem'),
    );
    expect(hex(plaintext)).toBe(hex(fixtureBytes('cms/synthetic-two-chunks.plaintext.bin')));
  });

  it('the wrong private key gives ERR_DECRYPT_FAILED with a fixed message', () => {
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    try {
      openCmsEnvelope(fixtureBytes('cms/kms-cfr-edgebit.ber'), privateKey);
      expect.unreachable();
    } catch (error) {
      expect(isNitroInferError(error) && error.code).toBe('ERR_DECRYPT_FAILED');
      expect((error as Error).message).toBe('decryption failed');
    }
  });

  it('a flipped bit in the ciphertext or the wrapped key is ERR_DECRYPT_FAILED or a wrong key, never the right one', () => {
    const ber = fixtureBytes('cms/kms-cfr-edgebit.ber');
    const envelope = parseCmsEnvelope(ber);
    const wrappedAt = Buffer.from(ber).indexOf(Buffer.from(envelope.encryptedKey));
    const tampered = new Uint8Array(ber);
    tampered[wrappedAt + 100]! ^= 1;
    expect(codeOf(() => openCmsEnvelope(tampered, key('kms-cfr-edgebit.key.pem')))).toBe(
      'ERR_DECRYPT_FAILED',
    );
  });

  it('every truncation is refused with a typed error', () => {
    const ber = fixtureBytes('cms/synthetic-two-chunks.ber');
    for (let length = 0; length < ber.byteLength; length += 7) {
      expect(codeOf(() => parseCmsEnvelope(ber.subarray(0, length)))).toBe('ERR_CMS_MALFORMED');
    }
  });

  it('random corruption gives a typed error or some key, never a crash', () => {
    // CMS content is AES-CBC without a MAC, so a flip in the IV or ciphertext can yield a different
    // key instead of an error; the Encryption SDK's AES-GCM then refuses that key (tested with sealing).
    const ber = fixtureBytes('cms/kms-cfr-edgebit.ber');
    const privateKey = key('kms-cfr-edgebit.key.pem');
    fc.assert(
      fc.property(fc.nat({ max: ber.byteLength - 1 }), fc.integer({ min: 1, max: 255 }), (offset, xor) => {
        const copy = new Uint8Array(ber);
        copy[offset]! ^= xor;
        try {
          return openCmsEnvelope(copy, privateKey) instanceof Uint8Array;
        } catch (error) {
          return isNitroInferError(error);
        }
      }),
      { numRuns: 500 },
    );
  });
});

describe.skipIf(HAVE_FIXTURES)('CMS EnvelopedData from KMS', () => {
  it.skip(FIXTURES_ABSENT, () => {});
});

describe('CMS envelope bounds', () => {
  it('refuses empty and oversized input', () => {
    expect(codeOf(() => parseCmsEnvelope(new Uint8Array()))).toBe('ERR_CMS_MALFORMED');
    expect(codeOf(() => parseCmsEnvelope(new Uint8Array(64 * 1024 + 1)))).toBe('ERR_CMS_MALFORMED');
  });
});
