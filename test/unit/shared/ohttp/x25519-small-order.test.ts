/**
 * RFC 9180 section 7.1.4: an X25519 public key of small order makes the shared secret all zeros,
 * which a DHKEM must refuse. node-primitives.ts leaves that check to OpenSSL (its X25519 derive
 * fails on an all-zero result); these attack it with the small-order points (and their
 * non-canonical encodings) as the request's `enc` at the gateway, and as the recipient key at a
 * sender. Each attack has a control beside it that the same path accepts. With the check removed
 * (a zero secret returned instead) the KEM and client cases fail; the gateway case would still be
 * refused, by the AEAD, so it guards the error code only.
 */
import { describe, expect, it } from 'vitest';
import { OhttpGateway, encapsulateRequest } from '../../../../shared/ohttp/encapsulation.ts';
import type { KeyConfig } from '../../../../shared/ohttp/key-config.ts';
import { NodeDhkemX25519HkdfSha256 } from '../../../../shared/ohttp/node-primitives.ts';
import { codeOfAsync } from '../../../helpers/codes.ts';

/** Little-endian u-coordinates of order 1, 2, 4 or 8, and p-1, p, p+1 (as in libsodium's blocklist). */
const SMALL_ORDER = [
  '0000000000000000000000000000000000000000000000000000000000000000',
  '0100000000000000000000000000000000000000000000000000000000000000',
  'e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800',
  '5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157',
  'ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
  'edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
  'eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
].map((hex) => new Uint8Array(Buffer.from(hex, 'hex')));

const kem = new NodeDhkemX25519HkdfSha256();

async function gatewayAndConfig(): Promise<{ gateway: OhttpGateway; config: KeyConfig }> {
  const pair = await kem.generateKeyPair();
  const publicKey = new Uint8Array(await kem.serializePublicKey(pair.publicKey));
  const config = { keyId: 3, kemId: 0x20, publicKey, symmetricAlgorithms: [{ kdfId: 1, aeadId: 2 }] };
  const raw = new Uint8Array(await kem.serializePrivateKey(pair.privateKey));
  return { gateway: await OhttpGateway.create(config, raw), config };
}

describe('X25519 small-order points (RFC 9180 section 7.1.4)', () => {
  it('the KEM refuses each as an enc to decapsulate, and decapsulates a valid one', async () => {
    const recipient = await kem.generateKeyPair();
    const { enc } = await kem.encap({ recipientPublicKey: recipient.publicKey });
    await expect(kem.decap({ enc, recipientKey: recipient })).resolves.toBeInstanceOf(ArrayBuffer);
    for (const point of SMALL_ORDER) {
      await expect(kem.decap({ enc: point.slice().buffer, recipientKey: recipient })).rejects.toThrow();
    }
  });

  it('a sender refuses each as a recipient key, and encapsulates to a valid one', async () => {
    const valid = await kem.generateKeyPair();
    await expect(kem.encap({ recipientPublicKey: valid.publicKey })).resolves.toHaveProperty('enc');
    for (const point of SMALL_ORDER) {
      const recipientPublicKey = await kem.deserializePublicKey(point.slice().buffer);
      await expect(kem.encap({ recipientPublicKey })).rejects.toThrow();
    }
  });

  it('the gateway refuses a request whose enc is a small-order point (ERR_DECRYPT_FAILED)', async () => {
    const { gateway, config } = await gatewayAndConfig();
    const { encapsulated } = await encapsulateRequest(config, new TextEncoder().encode('hi'));
    expect(new TextDecoder().decode((await gateway.decapsulate(encapsulated)).message)).toBe('hi');
    for (const point of SMALL_ORDER) {
      const forged = encapsulated.slice();
      forged.set(point, 7);
      expect(await codeOfAsync(() => gateway.decapsulate(forged))).toBe('ERR_DECRYPT_FAILED');
    }
  });

  it('a client refuses a key config whose public key is a small-order point', async () => {
    const { config } = await gatewayAndConfig();
    for (const point of SMALL_ORDER) {
      await expect(encapsulateRequest({ ...config, publicKey: point }, new Uint8Array(4))).rejects.toThrow();
    }
  });
});
