/**
 * A simulated Nitro PKI with the shapes and lifetimes of AWS's:
 *
 * | level    | lifetime | constraints                   | AWS subject, for comparison                 |
 * |----------|----------|-------------------------------|---------------------------------------------|
 * | root     | 30 years | CA                            | CN=aws.nitro-enclaves                       |
 * | regional | 20 days  | CA, pathlen 2                 | CN=<id>.<region>.aws.nitro-enclaves         |
 * | zonal    | 6 days   | CA, pathlen 1                 | CN=<id>.zonal.<region>.aws.nitro-enclaves   |
 * | instance | 1 day    | CA, pathlen 0, keyCertSign    | CN=<instance>.<region>.aws.nitro-enclaves   |
 * | leaf     | 3 hours  | not a CA, digitalSignature    | CN=<instance>-enc<id>.<region>.aws          |
 *
 * All keys are ECDSA P-384 and all signatures ecdsa-with-SHA384. Names say "simulated" so that a
 * simulated certificate is never mistaken for AWS's; the verifier trusts this root only when it is
 * passed explicitly.
 */
import {
  X509Certificate,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  randomBytes,
} from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { KeyObject } from 'node:crypto';
import type { NsmSigningIdentity, NsmSigningIdentitySource } from '../enclave/nsm/index.ts';
import { KEY_USAGE_BITS, buildCertificate } from './x509-builder.ts';
import type { DistinguishedName } from './x509-builder.ts';

const HOUR_MS = 3_600_000;
const DAY_MS = 24 * HOUR_MS;

/** Lifetimes of each level, as AWS issues them. */
export const NITRO_PKI_LIFETIMES_MS = {
  root: 30 * 365 * DAY_MS,
  regional: 20 * DAY_MS,
  zonal: 6 * DAY_MS,
  instance: DAY_MS,
  leaf: 3 * HOUR_MS,
} as const;

/** A leaf is replaced once it has less than this left, so no document is signed by a nearly dead key. */
export const LEAF_RENEWAL_MARGIN_MS = 30 * 60_000;

type Level = 'root' | 'regional' | 'zonal' | 'instance';
const LEVELS: readonly Level[] = ['root', 'regional', 'zonal', 'instance'];
const PATH_LENGTHS = { root: undefined, regional: 2, zonal: 1, instance: 0 } as const;

interface Authority {
  readonly privateKey: KeyObject;
  readonly certificate: Uint8Array;
  readonly notAfter: number;
}

/** The PKI's persistent form: PEM keys and certificates per level. */
export interface NitroPkiJson {
  readonly region: string;
  readonly instanceId: string;
  readonly authorities: Record<Level, { readonly privateKeyPem: string; readonly certificatePem: string }>;
}

/** Options for {@link SimulatedNitroPki.create}. */
export interface NitroPkiOptions {
  readonly region?: string;
  readonly instanceId?: string;
  readonly now?: number;
}

/** The simulated root, regional, zonal and instance authorities, able to issue NSM leaves. */
export class SimulatedNitroPki {
  readonly region: string;
  readonly instanceId: string;
  #authorities: Record<Level, Authority>;

  private constructor(region: string, instanceId: string, authorities: Record<Level, Authority>) {
    this.region = region;
    this.instanceId = instanceId;
    this.#authorities = authorities;
  }

  /** Generates a fresh PKI whose intermediates are valid from `now`. */
  static create(options: NitroPkiOptions = {}): SimulatedNitroPki {
    const now = options.now ?? Date.now();
    const region = options.region ?? 'us-east-1';
    const instanceId = options.instanceId ?? `i-${randomBytes(9).toString('hex').slice(0, 17)}`;
    const pki = new SimulatedNitroPki(region, instanceId, {} as Record<Level, Authority>);
    for (const level of LEVELS) pki.#issueAuthority(level, now);
    return pki;
  }

  /** Restores a PKI saved with {@link toJSON}. */
  static fromJSON(json: NitroPkiJson): SimulatedNitroPki {
    const authorities = {} as Record<Level, Authority>;
    for (const level of LEVELS) {
      const saved = json.authorities[level];
      const certificate = new X509Certificate(saved.certificatePem);
      authorities[level] = {
        privateKey: createPrivateKey(saved.privateKeyPem),
        certificate: new Uint8Array(certificate.raw),
        notAfter: Date.parse(certificate.validTo),
      };
    }
    return new SimulatedNitroPki(json.region, json.instanceId, authorities);
  }

  /** Loads the PKI saved at `file`, or creates one and saves it there (mode 0600). */
  static async openOrCreate(file: string): Promise<SimulatedNitroPki> {
    try {
      return SimulatedNitroPki.fromJSON(JSON.parse(await readFile(file, 'utf8')) as NitroPkiJson);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    }
    const pki = SimulatedNitroPki.create();
    await mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
    await writeFile(file, JSON.stringify(pki.toJSON(), null, 2), { mode: 0o600 });
    return pki;
  }

  /** The persistent form (contains private keys: for the simulation's state directory only). */
  toJSON(): NitroPkiJson {
    const authorities = {} as Record<Level, { privateKeyPem: string; certificatePem: string }>;
    for (const level of LEVELS) {
      const authority = this.#authorities[level];
      authorities[level] = {
        privateKeyPem: authority.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
        certificatePem: new X509Certificate(authority.certificate).toString(),
      };
    }
    return { region: this.region, instanceId: this.instanceId, authorities };
  }

  /** DER of the simulated root: pass it to the verifier as a trusted root. */
  get rootCertificate(): Uint8Array {
    return this.#authorities.root.certificate;
  }

  /** PEM of the simulated root. */
  get rootCertificatePem(): string {
    return new X509Certificate(this.#authorities.root.certificate).toString();
  }

  /**
   * Issues a fresh NSM leaf valid from `now` for three hours, renewing any intermediate that would
   * expire before the leaf does (as AWS rotates them), and returns it with its `cabundle`.
   */
  issueLeaf(moduleId: string, now: number = Date.now()): NsmSigningIdentity {
    const leafNotAfter = now + NITRO_PKI_LIFETIMES_MS.leaf;
    for (const level of LEVELS.slice(1)) {
      if (this.#authorities[level].notAfter < leafNotAfter) this.#issueAuthority(level, now);
    }
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'secp384r1' });
    const instance = this.#authorities.instance;
    const certificate = buildCertificate(
      {
        serialNumber: randomBytes(16),
        subject: this.#name([['CN', `${moduleId}.${this.region}.simulated`]], true),
        issuer: this.#subjectOf('instance'),
        notBefore: new Date(now - 60_000),
        notAfter: new Date(leafNotAfter),
        subjectPublicKey: publicKey,
        issuerPublicKey: createPublicKey(instance.privateKey),
        isCertificateAuthority: false,
        keyUsage: [KEY_USAGE_BITS.digitalSignature, KEY_USAGE_BITS.nonRepudiation],
      },
      instance.privateKey,
    );
    return {
      privateKey,
      certificate,
      cabundle: LEVELS.map((level) => this.#authorities[level].certificate),
      notAfter: leafNotAfter,
    };
  }

  /** A signing-identity source for the simulated NSM that reuses a leaf until it nears expiry. */
  signingIdentitySource(moduleId: string): NsmSigningIdentitySource {
    let current: NsmSigningIdentity | undefined;
    return {
      signingIdentity: (now: number) => {
        if (current === undefined || current.notAfter - now < LEAF_RENEWAL_MARGIN_MS) {
          current = this.issueLeaf(moduleId, now);
        }
        return current;
      },
    };
  }

  #issueAuthority(level: Level, now: number): void {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'secp384r1' });
    const parentLevel = LEVELS[LEVELS.indexOf(level) - 1];
    const issuer = parentLevel === undefined ? undefined : this.#authorities[parentLevel];
    const notAfter = now + NITRO_PKI_LIFETIMES_MS[level];
    const subject = this.#subjectOf(level);
    const certificate = buildCertificate(
      {
        serialNumber: randomBytes(16),
        subject,
        issuer: parentLevel === undefined ? subject : this.#subjectOf(parentLevel),
        notBefore: new Date(now - 60_000),
        notAfter: new Date(notAfter),
        subjectPublicKey: publicKey,
        issuerPublicKey: issuer === undefined ? publicKey : createPublicKey(issuer.privateKey),
        isCertificateAuthority: true,
        ...(PATH_LENGTHS[level] === undefined ? {} : { pathLength: PATH_LENGTHS[level] }),
        keyUsage:
          level === 'instance'
            ? [KEY_USAGE_BITS.keyCertSign]
            : [KEY_USAGE_BITS.digitalSignature, KEY_USAGE_BITS.keyCertSign, KEY_USAGE_BITS.cRLSign],
      },
      issuer?.privateKey ?? privateKey,
    );
    this.#authorities[level] = { privateKey, certificate, notAfter };
    // A new authority invalidates everything it issued: re-issue the levels below it.
    const below = LEVELS[LEVELS.indexOf(level) + 1];
    if (below !== undefined && this.#authorities[below] !== undefined) this.#issueAuthority(below, now);
  }

  #subjectOf(level: Level): DistinguishedName {
    const common = {
      root: 'simulated.nitro-enclaves',
      regional: `regional.${this.region}.simulated.nitro-enclaves`,
      zonal: `zonal.${this.region}.simulated.nitro-enclaves`,
      instance: `${this.instanceId}.${this.region}.simulated.nitro-enclaves`,
    }[level];
    return this.#name([['CN', common]], level === 'instance');
  }

  #name(commonName: DistinguishedName, withLocality: boolean): DistinguishedName {
    return [
      ['C', 'US'],
      ...(withLocality
        ? ([
            ['ST', 'Washington'],
            ['L', 'Seattle'],
          ] as const)
        : []),
      ['O', 'nitro-infer'],
      ['OU', 'simulation'],
      ...commonName,
    ];
  }
}
