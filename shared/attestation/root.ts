/**
 * The AWS Nitro Enclaves root certificate (G1), pinned.
 *
 * CN=aws.nitro-enclaves, ECDSA P-384, valid 2019-10-28 to 2049-10-28. AWS publishes it in
 * `AWS_NitroEnclaves_Root-G1.zip` (the hash printed next to that download is the zip's). Every
 * genuine attestation document carries exactly these bytes as `cabundle[0]`.
 */
import { X509Certificate, createHash } from 'node:crypto';

/** SHA-256 of the root's DER encoding, as published and as checked against `../shared/fixtures`. */
export const AWS_NITRO_ROOT_G1_SHA256 = '641a0321a3e244efe456463195d606317ed7cdcc3c1756e09893f3c68f79bb5b';

/** PEM of the AWS Nitro Enclaves root certificate G1. */
export const AWS_NITRO_ROOT_G1_PEM = `
-----BEGIN CERTIFICATE-----
MIICETCCAZagAwIBAgIRAPkxdWgbkK/hHUbMtOTn+FYwCgYIKoZIzj0EAwMwSTEL
MAkGA1UEBhMCVVMxDzANBgNVBAoMBkFtYXpvbjEMMAoGA1UECwwDQVdTMRswGQYD
VQQDDBJhd3Mubml0cm8tZW5jbGF2ZXMwHhcNMTkxMDI4MTMyODA1WhcNNDkxMDI4
MTQyODA1WjBJMQswCQYDVQQGEwJVUzEPMA0GA1UECgwGQW1hem9uMQwwCgYDVQQL
DANBV1MxGzAZBgNVBAMMEmF3cy5uaXRyby1lbmNsYXZlczB2MBAGByqGSM49AgEG
BSuBBAAiA2IABPwCVOumCMHzaHDimtqQvkY4MpJzbolL//Zy2YlES1BR5TSksfbb
48C8WBoyt7F2Bw7eEtaaP+ohG2bnUs990d0JX28TcPQXCEPZ3BABIeTPYwEoCWZE
h8l5YoQwTcU/9KNCMEAwDwYDVR0TAQH/BAUwAwEB/zAdBgNVHQ4EFgQUkCW1DdkF
R+eWw5b6cp3PmanfS5YwDgYDVR0PAQH/BAQDAgGGMAoGCCqGSM49BAMDA2kAMGYC
MQCjfy+Rocm9Xue4YnwWmNJVA44fA0P5W2OpYow9OYCVRaEevL8uO1XYru5xtMPW
rfMCMQCi85sWBbJwKKXdS6BptQFuZbT73o/gBh1qUxl/nNr12UO8Yfwr6wPLb+6N
IwLz3/Y=
-----END CERTIFICATE-----`;

/** DER of the AWS Nitro Enclaves root certificate G1; checked against its pinned hash at load. */
export const AWS_NITRO_ROOT_G1_DER: Uint8Array = pinnedDer(AWS_NITRO_ROOT_G1_PEM, AWS_NITRO_ROOT_G1_SHA256);

/**
 * Converts a PEM certificate to DER.
 * @throws Error when the text is not exactly one certificate.
 */
export function certificatePemToDer(pem: string): Uint8Array {
  return new Uint8Array(new X509Certificate(pem).raw);
}

function pinnedDer(pem: string, sha256: string): Uint8Array {
  const der = certificatePemToDer(pem);
  // A corrupted copy of the root must stop the program, not silently trust something else.
  if (createHash('sha256').update(der).digest('hex') !== sha256) {
    throw new Error('the built-in AWS Nitro root certificate does not match its pinned hash');
  }
  return der;
}
