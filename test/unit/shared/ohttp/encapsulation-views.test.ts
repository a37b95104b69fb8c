/**
 * Encapsulated messages arrive as views: a Node `Buffer` is often a slice of a larger pool (socket
 * reads, `Buffer.from` of small inputs), so its bytes start at a non-zero `byteOffset` of an
 * ArrayBuffer that holds other data. The gateway must read the request's header from the view, not
 * from the start of the pool.
 */
import { describe, expect, it } from 'vitest';
import { OhttpGateway, encapsulateRequest } from '../../../../shared/ohttp/encapsulation.ts';
import type { KeyConfig } from '../../../../shared/ohttp/key-config.ts';
import { NodeDhkemX25519HkdfSha256 } from '../../../../shared/ohttp/node-primitives.ts';
import { codeOf, codeOfAsync } from '../../../helpers/codes.ts';

const POOL_BYTES = 8192;
const OFFSET = 1000;

async function gatewayAndConfig(): Promise<{ gateway: OhttpGateway; config: KeyConfig }> {
  const kem = new NodeDhkemX25519HkdfSha256();
  const pair = await kem.generateKeyPair();
  const raw = new Uint8Array(await kem.serializePrivateKey(pair.privateKey));
  const publicKey = new Uint8Array(await kem.serializePublicKey(pair.publicKey));
  const config = { keyId: 7, kemId: 0x20, publicKey, symmetricAlgorithms: [{ kdfId: 1, aeadId: 2 }] };
  return { gateway: await OhttpGateway.create(config, raw), config };
}

/** `bytes` copied into a Buffer view at OFFSET of a pool whose other bytes are 0xee. */
function pooledView(bytes: Uint8Array): Buffer {
  const pool = Buffer.alloc(POOL_BYTES, 0xee);
  pool.set(bytes, OFFSET);
  return pool.subarray(OFFSET, OFFSET + bytes.byteLength);
}

describe('OhttpGateway.decapsulate with Buffer views', () => {
  it('opens a request held in a Buffer slice at a non-zero offset of a larger pool', async () => {
    const { gateway, config } = await gatewayAndConfig();
    const { encapsulated, opener } = await encapsulateRequest(config, new TextEncoder().encode('hello'));
    const view = pooledView(encapsulated);
    expect(view.byteOffset).toBe(OFFSET);
    expect(view.buffer.byteLength).toBe(POOL_BYTES);
    // Control: a reader that ignores byteOffset sees the pool's filler as the key id and suite,
    // which no gateway offers — the misreading this test guards against.
    expect(new DataView(view.buffer).getUint8(0)).toBe(0xee);
    expect(new DataView(view.buffer, view.byteOffset).getUint8(0)).toBe(config.keyId);

    const request = await gateway.decapsulate(view);
    expect(new TextDecoder().decode(request.message)).toBe('hello');
    // The response, also handed over as a pooled view, opens on the client.
    const response = pooledView(request.respond(new TextEncoder().encode('world')));
    expect(new TextDecoder().decode(opener.open(response))).toBe('world');
  });

  it('reads a snapshot: changing the caller’s view after the call does not change what is opened', async () => {
    const { gateway, config } = await gatewayAndConfig();
    const { encapsulated } = await encapsulateRequest(config, new TextEncoder().encode('stable'));
    const view = pooledView(encapsulated);
    const pending = gateway.decapsulate(view);
    view.fill(0);
    expect(new TextDecoder().decode((await pending).message)).toBe('stable');
  });
});

describe('decrypted messages own their buffer', () => {
  it('a large request opens into a buffer of its own (movable to a worker), and its response round-trips', async () => {
    const { gateway, config } = await gatewayAndConfig();
    const message = new Uint8Array(256 * 1024).map((_, index) => index % 251);
    const { encapsulated, opener } = await encapsulateRequest(config, message);
    const opened = await gateway.decapsulate(encapsulated);
    expect(Buffer.from(opened.message).equals(Buffer.from(message))).toBe(true);
    // A buffer holding exactly the message: the gateway moves it to a worker whole (binary tensors
    // are views into it), and nothing else travels with it.
    expect(opened.message.byteOffset).toBe(0);
    expect(opened.message.buffer.byteLength).toBe(message.byteLength);
    const response = new Uint8Array(100_000).fill(3);
    expect(Buffer.from(opener.open(opened.respond(response))).equals(Buffer.from(response))).toBe(true);
  });

  it('a large request or response with one flipped byte is refused (decrypted in chunks, checked at the end)', async () => {
    const { gateway, config } = await gatewayAndConfig();
    const message = new Uint8Array(300 * 1024).fill(1);
    const { encapsulated, opener } = await encapsulateRequest(config, message);
    const opened = await gateway.decapsulate(encapsulated);
    const sealed = opened.respond(message);
    // Early, past the first 64 KiB chunk, and in the tag.
    const flipped = (bytes: Uint8Array) =>
      [100, 200 * 1024, bytes.byteLength - 1].map((at) => {
        const forged = bytes.slice();
        forged[at] = (forged[at] as number) ^ 1;
        return forged;
      });
    for (const forged of flipped(encapsulated))
      expect(await codeOfAsync(() => gateway.decapsulate(forged))).toBe('ERR_DECRYPT_FAILED');
    for (const forged of flipped(sealed))
      expect(codeOf(() => opener.open(forged))).toBe('ERR_DECRYPT_FAILED');
    expect(Buffer.from(opener.open(sealed)).equals(Buffer.from(message))).toBe(true);
  });
});
