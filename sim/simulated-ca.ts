/**
 * A simulated certificate authority for TLS inside the simulation: the KMS simulator's server
 * certificate names the real KMS host (`kms.<region>.amazonaws.com`), so the enclave's KMS client
 * connects exactly as in production, trusting this CA in addition to the system's.
 */
import { X509Certificate, createPrivateKey, generateKeyPairSync, randomBytes } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { KEY_USAGE_BITS, buildCertificate } from './x509-builder.ts';
import type { DistinguishedName } from './x509-builder.ts';

const YEAR_MS = 365 * 24 * 3_600_000;
const CA_NAME: DistinguishedName = [
  ['C', 'US'],
  ['O', 'nitro-infer'],
  ['OU', 'simulation'],
  ['CN', 'nitro-infer simulated TLS CA'],
];

/** A TLS server identity: PEM key and certificate chain, as `https.createServer` takes them. */
export interface TlsServerIdentity {
  readonly keyPem: string;
  readonly certificatePem: string;
}

/** The persistent form of the CA. */
export interface SimulatedCaJson {
  readonly privateKeyPem: string;
  readonly certificatePem: string;
}

/** The simulated TLS CA. */
export class SimulatedCa {
  readonly #privateKey: KeyObject;
  readonly #certificate: X509Certificate;

  private constructor(privateKey: KeyObject, certificate: X509Certificate) {
    this.#privateKey = privateKey;
    this.#certificate = certificate;
  }

  static create(now: number = Date.now()): SimulatedCa {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'secp384r1' });
    const der = buildCertificate(
      {
        serialNumber: randomBytes(16),
        subject: CA_NAME,
        issuer: CA_NAME,
        notBefore: new Date(now - 60_000),
        notAfter: new Date(now + 10 * YEAR_MS),
        subjectPublicKey: publicKey,
        issuerPublicKey: publicKey,
        isCertificateAuthority: true,
        pathLength: 0,
        keyUsage: [KEY_USAGE_BITS.keyCertSign, KEY_USAGE_BITS.cRLSign],
      },
      privateKey,
    );
    return new SimulatedCa(privateKey, new X509Certificate(der));
  }

  static fromJSON(json: SimulatedCaJson): SimulatedCa {
    return new SimulatedCa(createPrivateKey(json.privateKeyPem), new X509Certificate(json.certificatePem));
  }

  toJSON(): SimulatedCaJson {
    return {
      privateKeyPem: this.#privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
      certificatePem: this.certificatePem,
    };
  }

  /** The CA certificate clients must trust. */
  get certificatePem(): string {
    return this.#certificate.toString();
  }

  /** Issues a server certificate for `names` (DNS names or IPv4 addresses), valid for a year. */
  issueServer(names: readonly string[], now: number = Date.now()): TlsServerIdentity {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    const der = buildCertificate(
      {
        serialNumber: randomBytes(16),
        subject: [['CN', names[0] ?? 'localhost']],
        issuer: CA_NAME,
        notBefore: new Date(now - 60_000),
        notAfter: new Date(now + YEAR_MS),
        subjectPublicKey: publicKey,
        issuerPublicKey: this.#certificate.publicKey,
        isCertificateAuthority: false,
        keyUsage: [KEY_USAGE_BITS.digitalSignature],
        serverNames: names,
      },
      this.#privateKey,
    );
    return {
      keyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
      certificatePem: new X509Certificate(der).toString(),
    };
  }
}
