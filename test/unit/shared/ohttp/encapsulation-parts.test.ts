/**
 * A response sealed from its Binary HTTP parts (encrypted where they lie, the padding from shared
 * zeros, in 64 KiB chunks) is byte for byte the response sealed from the joined message, and
 * opens to the message with its content and padding intact — with parts and padding larger than
 * a chunk, so the chunking and the repeated zero block are exercised.
 */
import { describe, expect, it } from 'vitest';
import {
  decodeBhttpResponse,
  encodeBhttpResponseParts,
  encodeBhttpResponsePieces,
} from '../../../../shared/ohttp/bhttp.ts';
import { OhttpGateway, encapsulateRequest } from '../../../../shared/ohttp/encapsulation.ts';
import { paddedLength } from '../../../../shared/ohttp/padding.ts';
import { NodeDhkemX25519HkdfSha256 } from '../../../../shared/ohttp/node-primitives.ts';

const kem = new NodeDhkemX25519HkdfSha256();

async function opened() {
  const pair = await kem.generateKeyPair();
  const publicKey = new Uint8Array(await kem.serializePublicKey(pair.publicKey));
  const config = { keyId: 9, kemId: 0x20, publicKey, symmetricAlgorithms: [{ kdfId: 1, aeadId: 2 }] };
  const gateway = await OhttpGateway.create(
    config,
    new Uint8Array(await kem.serializePrivateKey(pair.privateKey)),
  );
  const { encapsulated, opener } = await encapsulateRequest(config, new TextEncoder().encode('req'));
  return { request: await gateway.decapsulate(encapsulated), opener };
}

const head = {
  informational: [],
  status: 200,
  headers: [['content-type', 'application/octet-stream']],
  trailers: [],
} as const;
const pieces = [
  new TextEncoder().encode('{"outputs":[]}'),
  new Uint8Array(100_000).map((_, index) => (index * 7) % 256),
  new Uint8Array(70_000).map((_, index) => 255 - (index % 256)),
];
const content = Buffer.concat(pieces);

describe('respond from Binary HTTP parts', () => {
  for (const pad of [false, true]) {
    it(`is the response sealed from the joined message, and opens to it (${pad ? 'padded' : 'unpadded'})`, async () => {
      const { request, opener } = await opened();
      // 150 000 zeros: more than two 64 KiB chunks of the shared zero block.
      const padding = () => (pad ? 150_000 : 0);
      const nonce = new Uint8Array(32).fill(5);
      const fromParts = request.respond(encodeBhttpResponseParts(head, pieces, padding), nonce);
      const joined = encodeBhttpResponsePieces(head, pieces, padding);
      expect(Buffer.from(fromParts).equals(Buffer.from(request.respond(joined, nonce)))).toBe(true);
      const message = opener.open(fromParts);
      expect(message.byteLength).toBe(joined.byteLength);
      // The decoder refuses any non-zero padding byte.
      const response = decodeBhttpResponse(message);
      expect(Buffer.from(response.content).equals(content)).toBe(true);
      // The client's plaintext owns its buffer.
      expect(message.buffer.byteLength).toBe(message.byteLength);
    });
  }

  it('a second padded response still opens (the shared zeros were not written)', async () => {
    const { request, opener } = await opened();
    const padding = (length: number) => paddedLength(length) - length;
    for (let round = 0; round < 2; round++) {
      const sealed = request.respond(encodeBhttpResponseParts(head, pieces, padding));
      expect(Buffer.from(decodeBhttpResponse(opener.open(sealed)).content).equals(content)).toBe(true);
    }
  });
});
