/**
 * What an attacker on the parent can compute for the cluster exchange: a key it knows, sealed
 * with HPKE to the exchange key a requester's (public) document binds, under the same labels as a
 * genuine holder would use. The tests send it with every document the attacker can obtain.
 */
import { createHash, randomBytes } from 'node:crypto';
import { CipherSuite } from '@hpke/core';
import { AeadId } from '@hpke/common';
import { verifyAttestation } from '../../shared/attestation/index.ts';
import { decodeCbor, encodeDeterministicCbor } from '../../shared/cbor.ts';
import { NodeAead, NodeDhkemX25519HkdfSha256, NodeHkdfSha256 } from '../../shared/ohttp/node-primitives.ts';
import { decodeBhttpResponse, encodeBhttpRequest } from '../../shared/ohttp/bhttp.ts';
import { encapsulateRequest } from '../../shared/ohttp/encapsulation.ts';
import { decodeKeyConfig } from '../../shared/ohttp/key-config.ts';
import type { TestLinkClient } from './link-client.ts';

const suite = new CipherSuite({
  kem: new NodeDhkemX25519HkdfSha256(),
  kdf: new NodeHkdfSha256(),
  aead: new NodeAead(AeadId.Aes256Gcm),
});

/** The request binding of a requester's document, read as anyone can (the document is public). */
export function requestBindingOf(document: Uint8Array, roots: readonly Uint8Array[]) {
  const userData = verifyAttestation(document, { roots }).document.userData!;
  const map = decodeCbor(userData, { maxBytes: 1024, maxItems: 16, maxDecodedBytes: 8192 }) as Map<
    string,
    Uint8Array
  >;
  return { exchangeKey: map.get('exchangeKey')!, requestNonce: map.get('requestNonce')! };
}

/** A key the attacker knows (from KMS, or made up), sealed to `exchangeKey` as a holder would seal it. */
export async function sealKnownKey(
  requestDocument: Uint8Array,
  exchangeKey: Uint8Array,
  secret: Uint8Array = new Uint8Array(randomBytes(32)),
  metadata: { epoch: number; createdAt: number } = { epoch: 9, createdAt: 0 },
) {
  const plaintext = encodeDeterministicCbor(
    new Map<string, unknown>([
      ['v', 1],
      ['secret', secret],
      ['epoch', metadata.epoch],
      ['createdAt', metadata.createdAt],
    ]),
  );
  const sender = await suite.createSenderContext({
    recipientPublicKey: await suite.kem.deserializePublicKey(exchangeKey),
    info: Buffer.concat([
      Buffer.from('nitro-infer cluster key v1'),
      createHash('sha256').update(requestDocument).digest(),
    ]),
  });
  const ciphertext = new Uint8Array(await sender.seal(plaintext));
  const enc = new Uint8Array(sender.enc);
  return {
    secret,
    enc,
    ciphertext,
    sealedDigest: createHash('sha256').update(enc).update(ciphertext).digest(),
  };
}

/** A holder's response binding, as the attacker would write it into a document it could get signed. */
export function responseBinding(keyConfig: Uint8Array, sealedDigest: Uint8Array): Uint8Array {
  return encodeDeterministicCbor(
    new Map<string, unknown>([
      ['v', 1],
      ['purpose', 'cluster-key-response'],
      ['keyConfig', keyConfig],
      ['sealedDigest', new Uint8Array(sealedDigest)],
    ]),
  );
}

/**
 * A legitimate client's request (GET /v2/models, RFC 9458 to `keyConfig`) sent over the link's
 * `ohttp` message: resolves to the inner HTTP status, or the enclave's error code.
 */
export async function clientStatus(client: TestLinkClient, keyConfig: Uint8Array): Promise<number | string> {
  const { encapsulated, opener } = await encapsulateRequest(
    decodeKeyConfig(keyConfig),
    encodeBhttpRequest({
      method: 'GET',
      scheme: 'https',
      authority: '',
      path: '/v2/models',
      // Every request carries its Date: the gateway's replay window refuses one without.
      headers: [['date', new Date().toUTCString()]],
      content: new Uint8Array(0),
      trailers: [],
    }),
  );
  const reply = await client.request('ohttp', { body: encapsulated });
  if (reply.type !== 'ok') return String(reply.fields.get('code'));
  return decodeBhttpResponse(opener.open(reply.fields.get('body') as Uint8Array)).status;
}
