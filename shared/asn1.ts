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
