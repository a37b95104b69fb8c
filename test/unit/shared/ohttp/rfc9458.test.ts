/**
 * RFC 9458 Appendix A, byte for byte: the key config, the encapsulated request (with the example's
 * fixed ephemeral key), the gateway's decapsulation, and the encapsulated response (with its fixed
 * nonce). Then tampering: every flipped byte of the request or response is refused.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { NodeDhkemX25519HkdfSha256 as DhkemX25519HkdfSha256 } from '../../../../shared/ohttp/node-primitives.ts';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { OhttpGateway, encapsulateRequest } from '../../../../shared/ohttp/encapsulation.ts';
import { decodeKeyConfig, encodeKeyConfig } from '../../../../shared/ohttp/key-config.ts';
import { FIXTURES_DIR } from '../../../helpers/fixtures.ts';
import { codeOf, codeOfAsync } from '../../../helpers/codes.ts';
import { isNitroInferError } from '../../../../shared/errors.ts';

const FILE = path.join(FIXTURES_DIR, 'ohttp', 'rfc9458-appendix-a.json');
const HAVE = existsSync(FILE);
if (!HAVE) console.warn(`*** ${FILE} absent (set NITRO_FIXTURES_DIR): RFC 9458 vector tests skipped ***`);
const vector: Record<string, string> = HAVE ? JSON.parse(readFileSync(FILE, 'utf8')) : {};
const hex = (name: string) => new Uint8Array(Buffer.from(vector[name] as string, 'hex'));
const toHex = (bytes: Uint8Array) => Buffer.from(bytes).toString('hex');

async function fixedEphemeralKeyPair() {
  const kem = new DhkemX25519HkdfSha256();
  return {
    privateKey: await kem.deserializePrivateKey(hex('client_ephemeral_private_key')),
    publicKey: await kem.deserializePublicKey(hex('client_ephemeral_public_key')),
  };
}

describe.skipIf(!HAVE)('RFC 9458 Appendix A', () => {
  it('the key config decodes and re-encodes to the same bytes', () => {
    const config = decodeKeyConfig(hex('key_config'));
    expect(config.keyId).toBe(1);
    expect(toHex(config.publicKey)).toBe(vector.gateway_public_key);
    expect(config.symmetricAlgorithms).toEqual([
      { kdfId: 1, aeadId: 1 },
      { kdfId: 1, aeadId: 3 },
    ]);
    expect(toHex(encodeKeyConfig(config))).toBe(vector.key_config);
  });

  it('reproduces the encapsulated request, and the gateway opens it to the Binary HTTP request', async () => {
    const config = decodeKeyConfig(hex('key_config'));
    const { encapsulated } = await encapsulateRequest(config, hex('bhttp_request'), {
      aeadId: 1,
      ephemeralKeyPair: await fixedEphemeralKeyPair(),
    });
    expect(toHex(encapsulated)).toBe(vector.encapsulated_request);
    const gateway = await OhttpGateway.create(config, hex('gateway_private_key'));
    const request = await gateway.decapsulate(hex('encapsulated_request'));
    expect(toHex(request.message)).toBe(vector.bhttp_request);
  });

  it('reproduces the encapsulated response, and the client opens it', async () => {
    const config = decodeKeyConfig(hex('key_config'));
    const gateway = await OhttpGateway.create(config, hex('gateway_private_key'));
    const request = await gateway.decapsulate(hex('encapsulated_request'));
    expect(toHex(request.respond(hex('bhttp_response'), hex('response_nonce')))).toBe(
      vector.encapsulated_response,
    );
    const { opener } = await encapsulateRequest(config, hex('bhttp_request'), {
      aeadId: 1,
      ephemeralKeyPair: await fixedEphemeralKeyPair(),
    });
    expect(toHex(opener.open(hex('encapsulated_response')))).toBe(vector.bhttp_response);
  });

  it('every flipped byte of the request or the response is refused', async () => {
    const config = decodeKeyConfig(hex('key_config'));
    const gateway = await OhttpGateway.create(config, hex('gateway_private_key'));
    const request = hex('encapsulated_request');
    for (let index = 0; index < request.byteLength; index++) {
      const tampered = request.slice();
      tampered[index]! ^= 0x01;
      const code = await codeOfAsync(() => gateway.decapsulate(tampered));
      // Header bytes name another key or suite; the rest no longer opens.
      expect(index < 7 ? ['ERR_OHTTP_KEY_UNKNOWN'] : ['ERR_DECRYPT_FAILED']).toContain(code);
    }
    const { opener } = await encapsulateRequest(config, hex('bhttp_request'), {
      aeadId: 1,
      ephemeralKeyPair: await fixedEphemeralKeyPair(),
    });
    const response = hex('encapsulated_response');
    for (let index = 0; index < response.byteLength; index++) {
      const tampered = response.slice();
      tampered[index]! ^= 0x80;
      expect(codeOf(() => opener.open(tampered))).toBe('ERR_DECRYPT_FAILED');
    }
    expect(codeOf(() => opener.open(response.subarray(0, 31)))).toBe('ERR_DECRYPT_FAILED');
  });
});

describe.skipIf(HAVE)('RFC 9458 Appendix A', () => {
  it.skip(`${FILE} absent (set NITRO_FIXTURES_DIR)`, () => {});
});

describe('OHTTP round trips with every supported AEAD', () => {
  it.each([1, 2, 3])(
    'AEAD 0x000%i: request and response round-trip; another key cannot open',
    async (aeadId) => {
      const kem = new DhkemX25519HkdfSha256();
      const pair = await kem.generateKeyPair();
      const raw = new Uint8Array(await kem.serializePrivateKey(pair.privateKey));
      const publicKey = new Uint8Array(await kem.serializePublicKey(pair.publicKey));
      const config = { keyId: 7, kemId: 0x20, publicKey, symmetricAlgorithms: [{ kdfId: 1, aeadId }] };
      const gateway = await OhttpGateway.create(config, raw);
      const { encapsulated, opener } = await encapsulateRequest(config, new TextEncoder().encode('hello'));
      const request = await gateway.decapsulate(encapsulated);
      expect(new TextDecoder().decode(request.message)).toBe('hello');
      expect(new TextDecoder().decode(opener.open(request.respond(new TextEncoder().encode('world'))))).toBe(
        'world',
      );

      const other = await kem.generateKeyPair();
      const otherGateway = await OhttpGateway.create(
        config,
        new Uint8Array(await kem.serializePrivateKey(other.privateKey)),
      );
      expect(await codeOfAsync(() => otherGateway.decapsulate(encapsulated))).toBe('ERR_DECRYPT_FAILED');
    },
  );

  it('fast-check: arbitrary requests, responses and key configs fail only with typed errors', async () => {
    const kem = new DhkemX25519HkdfSha256();
    const pair = await kem.generateKeyPair();
    const publicKey = new Uint8Array(await kem.serializePublicKey(pair.publicKey));
    const config = { keyId: 3, kemId: 0x20, publicKey, symmetricAlgorithms: [{ kdfId: 1, aeadId: 2 }] };
    const gateway = await OhttpGateway.create(
      config,
      new Uint8Array(await kem.serializePrivateKey(pair.privateKey)),
    );
    const { opener } = await encapsulateRequest(config, new Uint8Array(1));
    const typed = (error: unknown) => {
      if (!isNitroInferError(error)) throw error;
    };
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ maxLength: 200 }), fc.boolean(), async (bytes, validHeader) => {
        const input =
          validHeader && bytes.byteLength >= 7
            ? Uint8Array.of(3, 0, 0x20, 0, 1, 0, 2, ...bytes.subarray(7))
            : bytes;
        await gateway.decapsulate(input).then(() => {
          throw new Error('opened random bytes');
        }, typed);
        try {
          opener.open(bytes);
          throw new Error('opened random bytes');
        } catch (error) {
          typed(error);
        }
        try {
          decodeKeyConfig(bytes);
        } catch (error) {
          typed(error);
        }
      }),
      { numRuns: 400, interruptAfterTimeLimit: 4000 },
    );
  });

  it('refuses malformed key configs with exact codes', () => {
    const good = encodeKeyConfig({
      keyId: 1,
      kemId: 0x20,
      publicKey: new Uint8Array(32),
      symmetricAlgorithms: [{ kdfId: 1, aeadId: 2 }],
    });
    expect(codeOf(() => decodeKeyConfig(good))).toBe('accepted');
    expect(codeOf(() => decodeKeyConfig(Uint8Array.of(...good, 0)))).toBe('ERR_OHTTP_MALFORMED');
    expect(codeOf(() => decodeKeyConfig(good.subarray(0, good.byteLength - 1)))).toBe('ERR_OHTTP_MALFORMED');
    const p256 = good.slice();
    p256[2] = 0x10;
    expect(codeOf(() => decodeKeyConfig(p256))).toBe('ERR_OHTTP_KEY_UNKNOWN');
    const unknownAead = good.slice();
    unknownAead[unknownAead.byteLength - 1] = 0x09;
    expect(codeOf(() => decodeKeyConfig(unknownAead))).toBe('ERR_OHTTP_KEY_UNKNOWN');
  });
});
