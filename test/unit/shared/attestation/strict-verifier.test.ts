/**
 * What a strict verifier refuses beyond the AWS text (issue 10): each probe is a document built to
 * break exactly one property, signed under a test root, beside a control that differs only in that
 * property and is accepted. Genuine AWS documents (fixtures.test.ts) must all still verify.
 */
import { describe, expect, it } from 'vitest';
import { verifyAttestation } from '../../../../shared/attestation/index.ts';
import { codeOf } from '../../../helpers/codes.ts';
import { payloadOf } from '../../../helpers/documents.ts';
import {
  FIXTURES_ABSENT,
  HAVE_FIXTURES,
  fixtureBytes,
  manifest,
  shortName,
} from '../../../helpers/fixtures.ts';
import {
  bootPcrs,
  map,
  payloadEntries,
  pcrsItem,
  probeChain,
  signedDocument,
  text,
} from '../../../helpers/probe-documents.ts';
import type { CertificateOverrides, ProbeChain } from '../../../helpers/probe-documents.ts';

const NOW = Date.parse('2026-06-01T12:00:00Z');
const NONCE = new Uint8Array(32).fill(7);

/** A well-formed document under `chain`, dated `timestamp`, with `change` applied to its payload entries. */
function document(
  chain: ProbeChain,
  timestamp = chain.leafNotBefore + 60_000,
  change: (entries: [Uint8Array, Uint8Array][]) => void = () => {},
): Uint8Array {
  const entries = payloadEntries(chain, timestamp, NONCE);
  change(entries);
  return signedDocument(chain, map(entries));
}

function verify(chain: ProbeChain, bytes: Uint8Array, at = chain.leafNotBefore + 120_000): string {
  return codeOf(() => verifyAttestation(bytes, { roots: [chain.root], at, nonce: NONCE }));
}

function withPcrs(pcrs: Map<number, Uint8Array>) {
  return (entries: [Uint8Array, Uint8Array][]) => {
    entries[3] = [text('pcrs'), pcrsItem(pcrs)];
  };
}

describe('strict verifier: a document without the boot PCRs 0–15', () => {
  const chain = probeChain(NOW);

  it('control: all of PCR0–15 present → accepted', () => {
    expect(verify(chain, document(chain))).toBe('accepted');
  });

  it('control: PCR0–15 plus an application PCR16 → accepted', () => {
    const pcrs = bootPcrs();
    pcrs.set(16, new Uint8Array(48).fill(9));
    expect(verify(chain, document(chain, undefined, withPcrs(pcrs)))).toBe('accepted');
  });

  it('only PCR3 → ERR_ATTESTATION_PAYLOAD_INVALID', () => {
    const pcrs = new Map([[3, new Uint8Array(48).fill(3)]]);
    expect(verify(chain, document(chain, undefined, withPcrs(pcrs)))).toBe('ERR_ATTESTATION_PAYLOAD_INVALID');
  });

  it.each([0, 1, 2, 8, 15])('PCR%i absent → ERR_ATTESTATION_PAYLOAD_INVALID', (index) => {
    const pcrs = bootPcrs();
    pcrs.delete(index);
    expect(verify(chain, document(chain, undefined, withPcrs(pcrs)))).toBe('ERR_ATTESTATION_PAYLOAD_INVALID');
  });

  it('PCR2 absent is refused even when the policy pins only PCR3 and debug mode is off', () => {
    const pcrs = bootPcrs();
    pcrs.delete(2);
    const probe = document(chain, undefined, withPcrs(pcrs));
    const control = document(chain);
    const options = (bytes: Uint8Array) => () =>
      verifyAttestation(bytes, {
        roots: [chain.root],
        at: chain.leafNotBefore + 120_000,
        expectedPcrs: { 3: bootPcrs().get(3)! },
      });
    expect(codeOf(options(control))).toBe('accepted');
    expect(codeOf(options(probe))).toBe('ERR_ATTESTATION_PAYLOAD_INVALID');
  });
});

describe.skipIf(!HAVE_FIXTURES)('strict verifier: what the real documents carry', () => {
  const genuine = manifest()
    .filter((entry) => entry.expect === 'valid')
    .map((entry) => [shortName(entry), entry] as const);
  it.each(genuine)('%s carries every one of PCR0–15', (_name, entry) => {
    // Read with cbor2 (the test helper's decoder), not with the code under test.
    const pcrs = payloadOf(fixtureBytes(entry.file)).get('pcrs') as Map<number, Uint8Array>;
    for (let index = 0; index < 16; index++) expect(pcrs.has(index), `PCR${index}`).toBe(true);
  });
});

describe.skipIf(HAVE_FIXTURES)('strict verifier: what the real documents carry', () => {
  it.skip(FIXTURES_ABSENT, () => {});
});

describe('strict verifier: BOOLEANs in certificates are read as DER only', () => {
  const UNKNOWN_OID = '1.3.6.1.4.1.55555.1.1';
  const NULL_VALUE = new Uint8Array([0x05, 0x00]);
  const withExtension = (criticalByte: number | undefined): CertificateOverrides => ({
    extraExtensions: [
      { oid: UNKNOWN_OID, ...(criticalByte === undefined ? {} : { criticalByte }), value: NULL_VALUE },
    ],
  });
  const verdict = (overrides: { root?: CertificateOverrides; leaf?: CertificateOverrides }) => {
    const chain = probeChain(NOW, overrides);
    return verify(chain, document(chain));
  };

  it('control: the unknown extension, not critical (flag omitted) → accepted', () => {
    expect(verdict({ leaf: withExtension(undefined) })).toBe('accepted');
  });

  it('control: the unknown extension flagged critical in DER (ff) → refused as unknown critical', () => {
    expect(verdict({ leaf: withExtension(0xff) })).toBe('ERR_ATTESTATION_CERTIFICATE_INVALID');
  });

  it('the unknown extension flagged critical in BER (01) → ERR_ATTESTATION_CERTIFICATE_INVALID', () => {
    // OpenSSL reads 01 as TRUE, so to it this extension is critical and the certificate unusable.
    expect(verdict({ leaf: withExtension(0x01) })).toBe('ERR_ATTESTATION_CERTIFICATE_INVALID');
  });

  it('control: the unknown extension with critical = FALSE (00) → accepted', () => {
    expect(verdict({ leaf: withExtension(0x00) })).toBe('accepted');
  });

  it.each([0x02, 0x80, 0xfe])('critical BOOLEAN %i → ERR_ATTESTATION_CERTIFICATE_INVALID', (byte) => {
    expect(verdict({ leaf: withExtension(byte) })).toBe('ERR_ATTESTATION_CERTIFICATE_INVALID');
  });

  it('known extensions (basic constraints, key usage) flagged critical with 01 in the leaf → refused', () => {
    expect(verdict({ leaf: { booleanTrueBytes: { critical: 0xff } } })).toBe('accepted');
    expect(verdict({ leaf: { booleanTrueBytes: { critical: 0x01 } } })).toBe(
      'ERR_ATTESTATION_CERTIFICATE_INVALID',
    );
  });

  it('basic constraints cA = 01 in the root → refused; cA = ff → accepted', () => {
    expect(verdict({ root: { booleanTrueBytes: { certificateAuthority: 0xff } } })).toBe('accepted');
    expect(verdict({ root: { booleanTrueBytes: { certificateAuthority: 0x01 } } })).toBe(
      'ERR_ATTESTATION_CERTIFICATE_INVALID',
    );
  });
});

describe("strict verifier: the document's timestamp lies inside its leaf's validity", () => {
  const chain = probeChain(NOW);
  const inside = chain.leafNotBefore + 60 * 60_000;

  it.each([
    ['the leaf notBefore', chain.leafNotBefore],
    ['an hour into the leaf', inside],
    ['the leaf notAfter', chain.leafNotAfter],
  ])('control: dated at %s → accepted', (_name, timestamp) => {
    expect(verify(chain, document(chain, timestamp), inside)).toBe('accepted');
  });

  it.each([
    ['1 ms before the leaf notBefore', chain.leafNotBefore - 1],
    ['a day before the leaf', chain.leafNotBefore - 86_400_000],
    ['1 ms after the leaf notAfter', chain.leafNotAfter + 1],
    ['a year after the leaf', chain.leafNotAfter + 365 * 86_400_000],
  ])('dated %s → ERR_ATTESTATION_TIMESTAMP_INVALID', (_name, timestamp) => {
    // Verified at an instant when the whole chain is valid and with no maximum age: only the date is wrong.
    expect(verify(chain, document(chain, timestamp), inside)).toBe('ERR_ATTESTATION_TIMESTAMP_INVALID');
  });
});
