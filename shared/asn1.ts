/**
 * node-forge's ASN.1 reader, configured strictly: exactly one value, no trailing bytes, bit strings
 * left undecoded. It reads BER, so it also takes KMS's indefinite-length CMS envelopes.
 */
import forge from 'node-forge';

// forge's reader takes an options object at run time; its type declarations only know a boolean.
const fromDer = forge.asn1.fromDer as unknown as (
  bytes: forge.util.ByteStringBuffer,
  options: { strict: boolean; parseAllBytes: boolean; decodeBitStrings: boolean },
) => forge.asn1.Asn1;

/**
 * Reads one ASN.1 value from a binary string (one character per byte).
 * @throws Error when the bytes are not exactly one well-formed value.
 */
export function readAsn1Strict(binary: string): forge.asn1.Asn1 {
  return fromDer(forge.util.createBuffer(binary), {
    strict: true,
    parseAllBytes: true,
    decodeBitStrings: false,
  });
}

/**
 * Reads a BOOLEAN as DER requires it (X.690 section 11.1): one content byte, 0x00 for FALSE and
 * 0xff for TRUE. BER allows any non-zero byte for TRUE; accepting that here would let a certificate
 * mean one thing to us and another to OpenSSL (which reads `01` as TRUE, so an unknown extension
 * flagged critical that way is critical to it and must be to us).
 * @throws Error when `node` is not a universal, primitive, DER-encoded BOOLEAN.
 */
export function readDerBoolean(node: forge.asn1.Asn1 | undefined): boolean {
  if (
    node === undefined ||
    node.tagClass !== forge.asn1.Class.UNIVERSAL ||
    node.type !== forge.asn1.Type.BOOLEAN ||
    node.constructed ||
    typeof node.value !== 'string' ||
    node.value.length !== 1
  ) {
    throw new Error('expected a BOOLEAN');
  }
  if (node.value === '\xff') return true;
  if (node.value === '\x00') return false;
  throw new Error('BOOLEAN is not DER-encoded (TRUE must be 0xff)');
}
