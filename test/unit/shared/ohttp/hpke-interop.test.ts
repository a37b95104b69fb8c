/**
 * node-primitives.ts replaces hpke-js's primitives and short-cuts its key schedule (one extract
 * per labeled ikm, cached public psk_id and info hashes, one-block expands). These check the
 * result against stock `@hpke/core` (its own X25519, HKDF and AEADs on WebCrypto, and
 * `@hpke/chacha20poly1305`), an independent implementation: each side opens what the other
 * sealed and both export the same secret, for every AEAD, for infos and PSKs that change between
 * requests (so a stale cached hash would show), and in PSK mode (whose psk_id is hashed too).
 */
import { Chacha20Poly1305 } from '@hpke/chacha20poly1305';
import { Aes128Gcm, Aes256Gcm, CipherSuite, DhkemX25519HkdfSha256, HkdfSha256 } from '@hpke/core';
import type { AeadId } from '@hpke/common';
import { describe, expect, it } from 'vitest';
import {
  NodeAead,
  NodeDhkemX25519HkdfSha256,
  NodeHkdfSha256,
} from '../../../../shared/ohttp/node-primitives.ts';

const AEADS = [
  { name: 'AES-128-GCM', id: 1, stock: () => new Aes128Gcm() },
  { name: 'AES-256-GCM', id: 2, stock: () => new Aes256Gcm() },
  { name: 'ChaCha20-Poly1305', id: 3, stock: () => new Chacha20Poly1305() },
];
const text = (value: string) => new TextEncoder().encode(value);
const hex = (bytes: ArrayBuffer) => Buffer.from(bytes).toString('hex');

describe.each(AEADS)('node-primitives against stock @hpke/core, $name', ({ id, stock }) => {
  const ours = new CipherSuite({
    kem: new NodeDhkemX25519HkdfSha256(),
    kdf: new NodeHkdfSha256(),
    aead: new NodeAead(id as AeadId),
  });
  const theirs = new CipherSuite({ kem: new DhkemX25519HkdfSha256(), kdf: new HkdfSha256(), aead: stock() });

  it('each opens what the other sealed, and both export the same secret, as the info changes', async () => {
    const recipient = await ours.kem.generateKeyPair();
    const theirRecipient = {
      privateKey: await theirs.kem.deserializePrivateKey(
        await ours.kem.serializePrivateKey(recipient.privateKey),
      ),
      publicKey: await theirs.kem.deserializePublicKey(
        await ours.kem.serializePublicKey(recipient.publicKey),
      ),
    };
    for (const info of ['info A', 'info B', 'info A', '', 'info B']) {
      const message = text(`message under ${info}`);
      const sender = await ours.createSenderContext({
        recipientPublicKey: recipient.publicKey,
        info: text(info),
      });
      const sealed = await sender.seal(message);
      const opener = await theirs.createRecipientContext({
        recipientKey: theirRecipient.privateKey,
        enc: sender.enc,
        info: text(info),
      });
      expect(new TextDecoder().decode(await opener.open(sealed))).toBe(`message under ${info}`);
      expect(hex(await sender.export(text('exp'), 32))).toBe(hex(await opener.export(text('exp'), 32)));

      const theirSender = await theirs.createSenderContext({
        recipientPublicKey: theirRecipient.publicKey,
        info: text(info),
      });
      const ourOpener = await ours.createRecipientContext({
        recipientKey: recipient.privateKey,
        enc: theirSender.enc,
        info: text(info),
      });
      expect(new TextDecoder().decode(await ourOpener.open(await theirSender.seal(message)))).toBe(
        `message under ${info}`,
      );
      // A second message in the same context: the nonce's sequence number goes into the AEAD.
      expect(new TextDecoder().decode(await ourOpener.open(await theirSender.seal(text('second'))))).toBe(
        'second',
      );
      expect(hex(await ourOpener.export(text('exp'), 48))).toBe(
        hex(await theirSender.export(text('exp'), 48)),
      );
    }
  });

  it('interoperates in PSK mode with PSK ids that change between requests', async () => {
    const recipient = await theirs.kem.generateKeyPair();
    const ourKey = await ours.kem.deserializePrivateKey(
      await theirs.kem.serializePrivateKey(recipient.privateKey),
    );
    for (const pskId of ['id 1', 'id 2', 'id 1']) {
      const psk = { id: text(pskId), key: text(`a pre-shared key of 32 bytes: ${pskId}`) };
      const sender = await theirs.createSenderContext({ recipientPublicKey: recipient.publicKey, psk });
      const sealed = await sender.seal(text(pskId));
      const opener = await ours.createRecipientContext({ recipientKey: ourKey, enc: sender.enc, psk });
      expect(new TextDecoder().decode(await opener.open(sealed))).toBe(pskId);
      // Another PSK id does not open it: its hash is not the cached one.
      const other = { id: text(`${pskId}x`), key: psk.key };
      const wrong = await ours.createRecipientContext({ recipientKey: ourKey, enc: sender.enc, psk: other });
      await expect(wrong.open(sealed)).rejects.toThrow();
    }
  });
});
