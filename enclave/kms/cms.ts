/**
 * KMS `CiphertextForRecipient`: CMS EnvelopedData (RFC 5652 section 6) in BER, as KMS returns it
 * for a `Recipient` request. One KeyTransRecipientInfo (RSAES-OAEP with SHA-256 and MGF1-SHA-256,
 * RFC 8017 / RFC 4055) wraps a content key; the content (the data key) is AES-256-CBC with PKCS#7
 * padding, its `[0]` either primitive or a constructed sequence of OCTET STRING chunks.
 *
 * No library unwraps this (node-forge's PKCS#7 knows neither OAEP-SHA-256 recipients nor BER
 * chunked content), so the structure is read here with node-forge's strict BER reader and the
 * cryptography is Node's. Structural problems are `ERR_CMS_MALFORMED`; every cryptographic failure
 * collapses into one `ERR_DECRYPT_FAILED` with a fixed message.
 */
import { constants, createDecipheriv, privateDecrypt } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import forge from 'node-forge';
import { readAsn1Strict } from '../../shared/asn1.ts';
import { KmsError } from '../../shared/errors.ts';

/** KMS answers are small (one wrapped key and a data key of at most 1024 bytes); 64 KiB bounds them. */
export const MAX_CMS_BYTES = 64 * 1024;

const OID = {
  envelopedData: '1.2.840.113549.1.7.3',
  data: '1.2.840.113549.1.7.1',
  rsaesOaep: '1.2.840.113549.1.1.7',
  sha256: '2.16.840.1.101.3.4.2.1',
  mgf1: '1.2.840.113549.1.1.8',
  aes256Cbc: '2.16.840.1.101.3.4.1.42',
} as const;

/** The parts of a KMS CMS envelope. */
export interface CmsEnvelope {
  /** The RSAES-OAEP-wrapped content-encryption key. */
  readonly encryptedKey: Uint8Array;
  /** AES-256-CBC initialization vector (16 bytes). */
  readonly iv: Uint8Array;
  /** AES-256-CBC ciphertext, chunks joined. */
  readonly ciphertext: Uint8Array;
  /** The recipient's subjectKeyIdentifier. */
  readonly subjectKeyIdentifier: Uint8Array;
}

/**
 * Parses a KMS `CiphertextForRecipient`.
 * @throws {KmsError} `ERR_CMS_MALFORMED`.
 */
export function parseCmsEnvelope(ber: Uint8Array): CmsEnvelope {
  if (ber.byteLength === 0 || ber.byteLength > MAX_CMS_BYTES) {
    throw malformed(`CMS envelope must be 1 to ${MAX_CMS_BYTES} bytes`);
  }
  let root: forge.asn1.Asn1;
  try {
    root = readAsn1Strict(Buffer.from(ber.buffer, ber.byteOffset, ber.byteLength).toString('latin1'));
  } catch (error) {
    throw malformed('CMS envelope is not valid BER', error);
  }
  try {
    return readEnvelope(root);
  } catch (error) {
    if (error instanceof KmsError) throw error;
    throw malformed('CMS envelope does not have the EnvelopedData structure', error);
  }
}

/**
 * Unwraps a KMS `CiphertextForRecipient` with the enclave's RSA private key and returns the data key.
 * @throws {KmsError} `ERR_CMS_MALFORMED` or `ERR_DECRYPT_FAILED`.
 */
export function openCmsEnvelope(ber: Uint8Array, privateKey: KeyObject): Uint8Array {
  const envelope = parseCmsEnvelope(ber);
  try {
    const contentKey = privateDecrypt(
      { key: privateKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' },
      envelope.encryptedKey,
    );
    try {
      if (contentKey.byteLength !== 32) throw new Error('content key is not 32 bytes');
      const decipher = createDecipheriv('aes-256-cbc', contentKey, envelope.iv);
      return new Uint8Array(Buffer.concat([decipher.update(envelope.ciphertext), decipher.final()]));
    } finally {
      contentKey.fill(0);
    }
  } catch {
    throw new KmsError('ERR_DECRYPT_FAILED', 'decryption failed');
  }
}

function readEnvelope(root: forge.asn1.Asn1): CmsEnvelope {
  const [contentType, explicit] = sequence(root, 2);
  expectOid(contentType, OID.envelopedData, 'content type');
  const [enveloped] = children(tagged(explicit, 0, true), 1);
  const fields = children(universal(enveloped, forge.asn1.Type.SEQUENCE));
  // EnvelopedData ::= SEQUENCE { version, originatorInfo [0] OPTIONAL, recipientInfos, encryptedContentInfo, unprotectedAttrs [1] OPTIONAL }
  let index = 1;
  if (fields[index]?.tagClass === forge.asn1.Class.CONTEXT_SPECIFIC) index++;
  const recipients = children(universal(fields[index], forge.asn1.Type.SET));
  if (recipients.length !== 1) throw malformed(`expected one recipient, found ${recipients.length}`);
  const [version, rid, keyAlgorithm, encryptedKey] = sequence(recipients[0], 4);
  if (primitive(universal(version, forge.asn1.Type.INTEGER)) !== '\x02') {
    throw malformed('KeyTransRecipientInfo must be version 2 (subjectKeyIdentifier)');
  }
  const subjectKeyIdentifier = primitive(tagged(rid, 0, false));
  checkOaepSha256(keyAlgorithm);

  const [dataType, contentAlgorithm, content] = sequence(fields[index + 1], 3);
  expectOid(dataType, OID.data, 'encrypted content type');
  const [aesOid, iv] = sequence(contentAlgorithm, 2);
  expectOid(aesOid, OID.aes256Cbc, 'content encryption algorithm');
  const ivBytes = primitive(universal(iv, forge.asn1.Type.OCTETSTRING));
  if (ivBytes.length !== 16) throw malformed('AES-256-CBC IV must be 16 bytes');
  const ciphertext = octets(tagged(content, 0));
  if (ciphertext.length === 0 || ciphertext.length % 16 !== 0)
    throw malformed('ciphertext is not whole AES blocks');

  return {
    encryptedKey: bytes(primitive(universal(encryptedKey, forge.asn1.Type.OCTETSTRING))),
    iv: bytes(ivBytes),
    ciphertext: bytes(ciphertext),
    subjectKeyIdentifier: bytes(subjectKeyIdentifier),
  };
}

function checkOaepSha256(algorithm: forge.asn1.Asn1 | undefined): void {
  const [oid, parameters] = sequence(algorithm, 2);
  expectOid(oid, OID.rsaesOaep, 'key encryption algorithm');
  // RSAES-OAEP-params: [0] hashAlgorithm, [1] maskGenAlgorithm, [2] pSourceAlgorithm (default: empty label).
  for (const parameter of children(universal(parameters, forge.asn1.Type.SEQUENCE))) {
    if (parameter.tagClass !== forge.asn1.Class.CONTEXT_SPECIFIC)
      throw malformed('unexpected OAEP parameter');
    const [inner] = children(parameter, 1);
    if (parameter.type === 0) {
      expectOid(sequence(inner)[0], OID.sha256, 'OAEP hash');
    } else if (parameter.type === 1) {
      const [mgf, mgfHash] = sequence(inner, 2);
      expectOid(mgf, OID.mgf1, 'OAEP mask generation');
      expectOid(sequence(mgfHash)[0], OID.sha256, 'MGF1 hash');
    } else {
      throw malformed('OAEP labels are not used by KMS');
    }
  }
}

/** Joins a primitive OCTET STRING or the chunks of a constructed one (BER, X.690 8.7.3). */
function octets(node: forge.asn1.Asn1): string {
  if (!node.constructed) return primitive(node);
  return children(node)
    .map((chunk) => octets(universal(chunk, forge.asn1.Type.OCTETSTRING)))
    .join('');
}

function sequence(node: forge.asn1.Asn1 | undefined, count?: number): forge.asn1.Asn1[] {
  return children(universal(node, forge.asn1.Type.SEQUENCE), count);
}

function children(node: forge.asn1.Asn1 | undefined, count?: number): forge.asn1.Asn1[] {
  if (node === undefined || !Array.isArray(node.value)) throw malformed('expected a constructed value');
  if (count !== undefined && node.value.length < count) throw malformed(`expected ${count} elements`);
  return node.value;
}

function universal(node: forge.asn1.Asn1 | undefined, type: number): forge.asn1.Asn1 {
  if (node === undefined || node.tagClass !== forge.asn1.Class.UNIVERSAL || node.type !== type) {
    throw malformed(`expected universal type ${type}`);
  }
  return node;
}

function tagged(node: forge.asn1.Asn1 | undefined, tag: number, constructed?: boolean): forge.asn1.Asn1 {
  if (
    node === undefined ||
    node.tagClass !== forge.asn1.Class.CONTEXT_SPECIFIC ||
    node.type !== tag ||
    (constructed !== undefined && node.constructed !== constructed)
  ) {
    throw malformed(`expected context tag [${tag}]`);
  }
  return node;
}

function primitive(node: forge.asn1.Asn1): string {
  if (typeof node.value !== 'string') throw malformed('expected a primitive value');
  return node.value;
}

function expectOid(node: forge.asn1.Asn1 | undefined, expected: string, what: string): void {
  const oid = forge.asn1.derToOid(primitive(universal(node, forge.asn1.Type.OID)));
  if (oid !== expected) throw malformed(`${what} ${oid} is not the one KMS uses (${expected})`);
}

function bytes(binary: string): Uint8Array {
  return new Uint8Array(Buffer.from(binary, 'latin1'));
}

function malformed(message: string, cause?: unknown): KmsError {
  return new KmsError('ERR_CMS_MALFORMED', message, cause === undefined ? undefined : { cause });
}
