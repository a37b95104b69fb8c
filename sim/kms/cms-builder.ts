/**
 * Writes `CiphertextForRecipient` the way KMS does: CMS EnvelopedData with one
 * KeyTransRecipientInfo (version 2, subjectKeyIdentifier), RSAES-OAEP-SHA-256 with MGF1-SHA-256,
 * and AES-256-CBC content. (DER is a valid subset of the BER KMS sends.)
 */
import { constants, createCipheriv, createHash, publicEncrypt, randomBytes } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import forge from 'node-forge';

const { asn1 } = forge;

/** Encrypts `plaintext` to the holder of `recipient`'s private key. */
export function buildCmsEnvelope(plaintext: Uint8Array, recipient: KeyObject): Uint8Array {
  const contentKey = randomBytes(32);
  const iv = randomBytes(16);
  const cipher = createCipheriv('aes-256-cbc', contentKey, iv);
  const ciphertext = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  const encryptedKey = publicEncrypt(
    { key: recipient, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' },
    contentKey,
  );
  contentKey.fill(0);
  const keyIdentifier = createHash('sha256')
    .update(recipient.export({ type: 'spki', format: 'der' }))
    .digest();

  const sha256 = sequence([oid('2.16.840.1.101.3.4.2.1')]);
  const oaep = sequence([
    oid('1.2.840.113549.1.1.7'),
    sequence([
      asn1.create(asn1.Class.CONTEXT_SPECIFIC, 0, true, [
        sequence([
          oid('2.16.840.1.101.3.4.2.1'),
          asn1.create(asn1.Class.UNIVERSAL, asn1.Type.NULL, false, ''),
        ]),
      ]),
      asn1.create(asn1.Class.CONTEXT_SPECIFIC, 1, true, [sequence([oid('1.2.840.113549.1.1.8'), sha256])]),
    ]),
  ]);
  const recipientInfo = sequence([
    asn1.create(asn1.Class.UNIVERSAL, asn1.Type.INTEGER, false, '\x02'),
    asn1.create(asn1.Class.CONTEXT_SPECIFIC, 0, false, binary(keyIdentifier)),
    oaep,
    asn1.create(asn1.Class.UNIVERSAL, asn1.Type.OCTETSTRING, false, binary(encryptedKey)),
  ]);
  const encryptedContentInfo = sequence([
    oid('1.2.840.113549.1.7.1'),
    sequence([
      oid('2.16.840.1.101.3.4.1.42'),
      asn1.create(asn1.Class.UNIVERSAL, asn1.Type.OCTETSTRING, false, binary(iv)),
    ]),
    asn1.create(asn1.Class.CONTEXT_SPECIFIC, 0, false, binary(ciphertext)),
  ]);
  const envelope = sequence([
    oid('1.2.840.113549.1.7.3'),
    asn1.create(asn1.Class.CONTEXT_SPECIFIC, 0, true, [
      sequence([
        asn1.create(asn1.Class.UNIVERSAL, asn1.Type.INTEGER, false, '\x02'),
        asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SET, true, [recipientInfo]),
        encryptedContentInfo,
      ]),
    ]),
  ]);
  return new Uint8Array(Buffer.from(asn1.toDer(envelope).getBytes(), 'latin1'));
}

function sequence(items: forge.asn1.Asn1[]): forge.asn1.Asn1 {
  return asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SEQUENCE, true, items);
}

function oid(value: string): forge.asn1.Asn1 {
  return asn1.create(asn1.Class.UNIVERSAL, asn1.Type.OID, false, asn1.oidToDer(value).getBytes());
}

function binary(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('latin1');
}
