/** Every real document in ../shared/fixtures, at its own time and outside its chain's window. */
import { createHash, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  AWS_NITRO_ROOT_G1_DER,
  AWS_NITRO_ROOT_G1_SHA256,
  verifyAttestation,
} from '../../../../shared/attestation/index.ts';
import {
  FIXTURES_ABSENT,
  HAVE_FIXTURES,
  fixtureBytes,
  fixturePath,
  manifest,
  manifestTime,
  shortName,
} from '../../../helpers/fixtures.ts';
import { codeOf } from '../../../helpers/codes.ts';

const entries = manifest();
const genuine = entries
  .filter((entry) => entry.expect === 'valid')
  .map((entry) => [shortName(entry), entry] as const);
const negative = {
  'eternis-bad-signature-2024-07-23.cose': 'ERR_ATTESTATION_SIGNATURE_INVALID',
  'marlin-mock-root.cose': 'ERR_ATTESTATION_ROOT_UNTRUSTED',
} as const;

describe.skipIf(!HAVE_FIXTURES)('real AWS attestation documents', () => {
  it('the built-in root is byte-equal to the fixture root, whose hash is the published one', () => {
    const fixture = new X509Certificate(readFileSync(fixturePath('root/aws-nitro-enclaves-root-g1.pem')));
    expect(Buffer.from(fixture.raw).equals(Buffer.from(AWS_NITRO_ROOT_G1_DER))).toBe(true);
    expect(createHash('sha256').update(fixture.raw).digest('hex')).toBe(AWS_NITRO_ROOT_G1_SHA256);
  });

  it.each(genuine)('%s verifies at its own timestamp, with its PCRs', (_name, entry) => {
    const verified = verifyAttestation(fixtureBytes(entry.file), {
      at: entry.timestamp_ms,
      allowDebug: entry.debug_mode,
      expectedPcrs: { 0: entry.pcr0, 1: entry.pcr1, 2: entry.pcr2, 8: entry.pcr8 },
    });
    expect(verified.document.moduleId).toBe(entry.module_id);
    expect(verified.document.timestamp).toBe(entry.timestamp_ms);
    expect(verified.document.pcrs.size).toBe(entry.pcr_count);
    expect(verified.debugMode).toBe(entry.debug_mode);
  });

  it.each(genuine.filter(([, entry]) => entry.debug_mode))(
    '%s is refused unless debug mode is allowed',
    (_name, entry) => {
      expect(codeOf(() => verifyAttestation(fixtureBytes(entry.file), { at: entry.timestamp_ms }))).toBe(
        'ERR_ATTESTATION_DEBUG_MODE',
      );
    },
  );

  it.each(genuine)('%s fails once its chain has expired', (_name, entry) => {
    const at = manifestTime(entry.valid_until_utc) + 1000;
    expect(codeOf(() => verifyAttestation(fixtureBytes(entry.file), { at, allowDebug: true }))).toBe(
      'ERR_ATTESTATION_CERTIFICATE_EXPIRED',
    );
  });

  it.each(genuine)('%s fails before its chain is valid', (_name, entry) => {
    const at = manifestTime(entry.valid_from_utc) - 1000;
    expect(codeOf(() => verifyAttestation(fixtureBytes(entry.file), { at, allowDebug: true }))).toBe(
      'ERR_ATTESTATION_CERTIFICATE_NOT_YET_VALID',
    );
  });

  it.each(genuine)('%s fails against the current time (leaf lives three hours)', (_name, entry) => {
    expect(codeOf(() => verifyAttestation(fixtureBytes(entry.file), { allowDebug: true }))).toBe(
      'ERR_ATTESTATION_CERTIFICATE_EXPIRED',
    );
  });

  it.each(Object.entries(negative))('negative/%s fails with %s', (name, code) => {
    const entry = entries.find((candidate) => candidate.file.endsWith(name));
    expect(entry).toBeDefined();
    expect(
      codeOf(() =>
        verifyAttestation(fixtureBytes(`attestation/negative/${name}`), {
          at: entry!.timestamp_ms,
          allowDebug: true,
        }),
      ),
    ).toBe(code);
  });

  it('the mock-root document is still refused when debug mode and any time are allowed', () => {
    const entry = entries.find((candidate) => candidate.file.endsWith('marlin-mock-root.cose'))!;
    expect(entry.expect).toBe('invalid');
    expect(
      codeOf(() =>
        verifyAttestation(fixtureBytes(entry.file), {
          at: entry.timestamp_ms,
          allowDebug: true,
          roots: [AWS_NITRO_ROOT_G1_DER],
        }),
      ),
    ).toBe('ERR_ATTESTATION_ROOT_UNTRUSTED');
  });
});

describe.skipIf(HAVE_FIXTURES)('real AWS attestation documents', () => {
  it.skip(FIXTURES_ABSENT, () => {});
});
