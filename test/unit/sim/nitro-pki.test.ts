/** The simulated Nitro PKI: AWS's shapes and lifetimes, and only trusted when passed explicitly. */
import { X509Certificate } from 'node:crypto';
import { cp, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { verifyAttestation } from '../../../shared/attestation/index.ts';
import { SimulatedNsm } from '../../../enclave/nsm/index.ts';
import {
  ENCLAVE_CODE_BUNDLE,
  NITRO_PKI_LIFETIMES_MS,
  SimulatedNitroPki,
  createSimulatedEnclaveIdentity,
  measureEnclaveCodeBundle,
} from '../../../sim/index.ts';
import { payloadOf } from '../../helpers/documents.ts';
import { PROJECT_ROOT } from '../../helpers/fixtures.ts';
import { codeOf } from '../../helpers/codes.ts';

const T0 = Date.parse('2026-03-01T12:00:00Z');
const HOUR = 3_600_000;

function lifetime(der: Uint8Array): number {
  const certificate = new X509Certificate(der);
  return Date.parse(certificate.validTo) - Date.parse(certificate.validFrom);
}

function nsmFor(pki: SimulatedNitroPki, clock: () => number): SimulatedNsm {
  return new SimulatedNsm({
    identity: pki.signingIdentitySource('i-00000000000000000-enc0000000000000000'),
    moduleId: 'i-00000000000000000-enc0000000000000000',
    bootPcrs: new Map([[0, new Uint8Array(48).fill(1)]]),
    clock,
  });
}

describe('simulated Nitro PKI', () => {
  const pki = SimulatedNitroPki.create({ now: T0 });
  const leaf = pki.issueLeaf('i-0-enc0', T0);

  it('has the chain shape of AWS: root → regional → zonal → instance → leaf, with their lifetimes', () => {
    expect(leaf.cabundle).toHaveLength(4);
    const [root, regional, zonal, instance] = leaf.cabundle.map((der) => new X509Certificate(der));
    const margin = 60_000; // notBefore is back-dated one minute
    expect(lifetime(leaf.cabundle[0]!)).toBe(NITRO_PKI_LIFETIMES_MS.root + margin);
    expect(lifetime(leaf.cabundle[1]!)).toBe(NITRO_PKI_LIFETIMES_MS.regional + margin);
    expect(lifetime(leaf.cabundle[2]!)).toBe(NITRO_PKI_LIFETIMES_MS.zonal + margin);
    expect(lifetime(leaf.cabundle[3]!)).toBe(NITRO_PKI_LIFETIMES_MS.instance + margin);
    expect(lifetime(leaf.certificate)).toBe(3 * HOUR + margin);
    expect(root!.ca && regional!.ca && zonal!.ca && instance!.ca).toBe(true);
    expect(new X509Certificate(leaf.certificate).ca).toBe(false);
    for (const der of [...leaf.cabundle, leaf.certificate]) {
      const key = new X509Certificate(der).publicKey;
      expect(key.asymmetricKeyDetails?.namedCurve).toBe('secp384r1');
    }
  });

  it('its documents verify with the simulated root and are refused under the AWS root', async () => {
    const nsm = nsmFor(pki, () => T0 + HOUR);
    const document = await nsm.attest({ nonce: new Uint8Array([1, 2, 3]) });
    expect(codeOf(() => verifyAttestation(document, { at: T0 + HOUR, roots: [pki.rootCertificate] }))).toBe(
      'accepted',
    );
    expect(codeOf(() => verifyAttestation(document, { at: T0 + HOUR }))).toBe(
      'ERR_ATTESTATION_ROOT_UNTRUSTED',
    );
    const other = SimulatedNitroPki.create({ now: T0 });
    expect(codeOf(() => verifyAttestation(document, { at: T0 + HOUR, roots: [other.rootCertificate] }))).toBe(
      'ERR_ATTESTATION_ROOT_UNTRUSTED',
    );
  });

  it('renews the leaf before it expires and the intermediates when they run out', async () => {
    const pki = SimulatedNitroPki.create({ now: T0 }); // its own: this test moves the intermediates on
    let now = T0;
    const nsm = nsmFor(pki, () => now);
    const first = payloadOf(await nsm.attest({}));
    now = T0 + 2 * HOUR; // the first leaf still has an hour: kept
    expect(payloadOf(await nsm.attest({})).get('certificate')).toEqual(first.get('certificate'));
    now = T0 + 2.75 * HOUR; // inside the renewal margin of the first leaf: replaced
    const second = payloadOf(await nsm.attest({}));
    expect(second.get('certificate')).not.toEqual(first.get('certificate'));
    now = T0 + 30 * 24 * HOUR; // past the regional certificate's 20 days
    const later = await nsm.attest({});
    expect(payloadOf(later).get('cabundle')).not.toEqual(first.get('cabundle'));
    expect(codeOf(() => verifyAttestation(later, { at: now, roots: [pki.rootCertificate] }))).toBe(
      'accepted',
    );
  });

  it('refuses a document dated well after the verification time when freshness is checked', async () => {
    let now = T0;
    const nsm = nsmFor(pki, () => now);
    await nsm.attest({}); // the leaf is issued at T0
    now = T0 + 10 * 60_000;
    const document = await nsm.attest({});
    const options = { roots: [pki.rootCertificate], maxAgeMs: HOUR };
    expect(codeOf(() => verifyAttestation(document, { ...options, at: T0 + 2 * 60_000 }))).toBe(
      'ERR_ATTESTATION_FROM_FUTURE',
    );
    expect(codeOf(() => verifyAttestation(document, { ...options, at: T0 + 11 * 60_000 }))).toBe('accepted');
  });

  it('survives a round trip through its saved form', async () => {
    const restored = SimulatedNitroPki.fromJSON(JSON.parse(JSON.stringify(pki.toJSON())));
    expect(restored.rootCertificate).toEqual(pki.rootCertificate);
    const document = await nsmFor(restored, () => T0 + HOUR).attest({});
    expect(codeOf(() => verifyAttestation(document, { at: T0 + HOUR, roots: [pki.rootCertificate] }))).toBe(
      'accepted',
    );
  });
});

describe('code-bundle measurement', () => {
  it('PCR0 and PCR2 change when one byte of enclave code changes; PCR1 does not', async () => {
    const copy = await mkdtemp(path.join(os.tmpdir(), 'nitro-infer-bundle-'));
    try {
      for (const entry of ENCLAVE_CODE_BUNDLE)
        await cp(path.join(PROJECT_ROOT, entry), path.join(copy, entry), { recursive: true });
      const before = await measureEnclaveCodeBundle(copy);
      expect(before).toEqual(await measureEnclaveCodeBundle(PROJECT_ROOT));
      await writeFile(path.join(copy, 'enclave', 'nsm', 'pcr.ts'), '// changed\n', { flag: 'a' });
      const after = await measureEnclaveCodeBundle(copy);
      expect(after.pcr0).not.toEqual(before.pcr0);
      expect(after.pcr2).not.toEqual(before.pcr2);
      expect(after.pcr1).toEqual(before.pcr1);
    } finally {
      await rm(copy, { recursive: true, force: true });
    }
  });

  it('the simulated NSM reports the measured PCRs, and a policy pinning another PCR0 refuses it', async () => {
    const { nsm, pki, measurements } = await createSimulatedEnclaveIdentity();
    const document = await nsm.attest({});
    const roots = [pki.rootCertificate];
    expect(
      codeOf(() =>
        verifyAttestation(document, { roots, expectedPcrs: { 0: measurements.pcr0, 2: measurements.pcr2 } }),
      ),
    ).toBe('accepted');
    const wrong = new Uint8Array(measurements.pcr0);
    wrong[47]! ^= 1;
    expect(codeOf(() => verifyAttestation(document, { roots, expectedPcrs: { 0: wrong } }))).toBe(
      'ERR_ATTESTATION_PCR_MISMATCH',
    );
  });
});
