/**
 * Strict CBOR as the verifier sees it (issue 10, items 1 and 2; the decoder is `shared/cbor.ts`):
 * documents signed under a test root whose only fault is a duplicate map key written in a second,
 * non-shortest encoding, or a float where the format says unsigned integer. Today's decoder
 * compared duplicate keys by their bytes and read 3.0 as 3, so each of these was accepted with the
 * later value silently winning. Each probe has a control that differs only in the probed encoding.
 */
import { describe, expect, it } from 'vitest';
import { verifyAttestation } from '../../../../shared/attestation/index.ts';
import { codeOf } from '../../../helpers/codes.ts';
import {
  ES384_HEADER,
  bootPcrs,
  bytes,
  float16,
  float64,
  map,
  negative,
  payloadEntries,
  probeChain,
  signedDocument,
  text,
  uint,
} from '../../../helpers/probe-documents.ts';
import type { ProbeChain } from '../../../helpers/probe-documents.ts';

const NOW = Date.parse('2026-06-01T12:00:00Z');
const NONCE = new Uint8Array(32).fill(7);
const OTHER_NONCE = new Uint8Array(32).fill(8);
const chain: ProbeChain = probeChain(NOW);
const timestamp = chain.leafNotBefore + 60_000;
const at = chain.leafNotBefore + 120_000;

type Entries = [Uint8Array, Uint8Array][];

function documentWith(change: (entries: Entries) => void, protectedHeader = ES384_HEADER): Uint8Array {
  const entries = payloadEntries(chain, timestamp, NONCE);
  change(entries);
  return signedDocument(chain, map(entries), protectedHeader);
}

function verdict(document: Uint8Array, nonce: Uint8Array = NONCE): string {
  return codeOf(() => verifyAttestation(document, { roots: [chain.root], at, nonce }));
}

/** The pcrs map written from entries whose keys are already encoded. */
function pcrsWithKeys(keys: readonly (readonly [Uint8Array, number])[]): Uint8Array {
  const pcrs = bootPcrs();
  return map(
    keys.map(([key, index]) => [key, bytes(pcrs.get(index) ?? new Uint8Array(48).fill(index))] as const),
  );
}

const shortestPcrKeys = () => [...bootPcrs().keys()].map((index) => [uint(index), index] as const);

describe('strict CBOR: duplicate map keys in any encoding', () => {
  it('control: one nonce, shortest key → accepted', () => {
    expect(verdict(documentWith(() => {}))).toBe('accepted');
  });

  it('control: one nonce, its key in a non-shortest (1-byte length) form → accepted', () => {
    // Valid CBOR, only not preferred: the refusals below are about the duplicate, not the encoding.
    const document = documentWith((entries) => {
      entries[8] = [text('nonce', 1), bytes(NONCE)];
    });
    expect(verdict(document)).toBe('accepted');
  });

  it.each([
    ['shortest first, then 1-byte length', text('nonce'), text('nonce', 1)],
    ['1-byte length first, then shortest', text('nonce', 1), text('nonce')],
    ['shortest, then 2-byte length', text('nonce'), text('nonce', 2)],
  ])('nonce twice (%s) → ERR_ATTESTATION_PAYLOAD_INVALID', (_name, first, second) => {
    const document = documentWith((entries) => {
      entries[8] = [first, bytes(OTHER_NONCE)];
      entries.push([second, bytes(NONCE)]);
    });
    // Whichever copy a lenient decoder keeps, the document must not verify under either nonce.
    expect(verdict(document, NONCE)).toBe('ERR_ATTESTATION_PAYLOAD_INVALID');
    expect(verdict(document, OTHER_NONCE)).toBe('ERR_ATTESTATION_PAYLOAD_INVALID');
  });

  it('control: the pcrs map with shortest keys 0–15 → accepted', () => {
    const document = documentWith((entries) => {
      entries[3] = [text('pcrs'), pcrsWithKeys(shortestPcrKeys())];
    });
    expect(verdict(document)).toBe('accepted');
  });

  it('control: PCR3 once, its key in uint8 form 18 03 → accepted', () => {
    const keys = shortestPcrKeys().map(([key, index]) => [index === 3 ? uint(3, 1) : key, index] as const);
    const document = documentWith((entries) => {
      entries[3] = [text('pcrs'), pcrsWithKeys(keys)];
    });
    expect(verdict(document)).toBe('accepted');
  });

  it.each([
    ['uint8 form 18 03', uint(3, 1)],
    ['uint16 form 19 0003', uint(3, 2)],
    ['uint64 form 1b 00…03', uint(3, 8)],
  ])('PCR3 twice, second key in %s → ERR_ATTESTATION_PAYLOAD_INVALID', (_name, key) => {
    const document = documentWith((entries) => {
      entries[3] = [text('pcrs'), pcrsWithKeys([...shortestPcrKeys(), [key, 99]])];
    });
    expect(verdict(document)).toBe('ERR_ATTESTATION_PAYLOAD_INVALID');
  });

  it('control: the protected header with its label in uint8 form (a1 18 01 38 22) → accepted', () => {
    expect(verdict(documentWith(() => {}, map([[uint(1, 1), negative(-35)]])))).toBe('accepted');
  });

  it('the protected header with the algorithm label twice (01 and 18 01) → ERR_ATTESTATION_MALFORMED', () => {
    const header = map([
      [uint(1), negative(-35)],
      [uint(1, 1), negative(-35)],
    ]);
    expect(verdict(documentWith(() => {}, header))).toBe('ERR_ATTESTATION_MALFORMED');
  });
});

describe('strict CBOR: floats where the format says unsigned integer', () => {
  it('control: timestamp as an unsigned integer → accepted', () => {
    expect(verdict(documentWith(() => {}))).toBe('accepted');
  });

  it('timestamp as a float64 of the same integral value → ERR_ATTESTATION_PAYLOAD_INVALID', () => {
    const document = documentWith((entries) => {
      entries[2] = [text('timestamp'), float64(timestamp)];
    });
    expect(verdict(document)).toBe('ERR_ATTESTATION_PAYLOAD_INVALID');
  });

  it('PCR index 3 as a half float 3.0 → ERR_ATTESTATION_PAYLOAD_INVALID', () => {
    const document = documentWith((entries) => {
      const keys = shortestPcrKeys().map(([key, index]) => [index === 3 ? float16(3) : key, index] as const);
      entries[3] = [text('pcrs'), pcrsWithKeys(keys)];
    });
    expect(verdict(document)).toBe('ERR_ATTESTATION_PAYLOAD_INVALID');
  });

  it('control: the protected header a1 01 38 22 → accepted', () => {
    expect(verdict(documentWith(() => {}, map([[uint(1), negative(-35)]])))).toBe('accepted');
  });

  it('the COSE label 1 as a half float 1.0 → ERR_ATTESTATION_MALFORMED', () => {
    expect(verdict(documentWith(() => {}, map([[float16(1), negative(-35)]])))).toBe(
      'ERR_ATTESTATION_MALFORMED',
    );
  });

  it('the algorithm -35 as a float64 → ERR_ATTESTATION_MALFORMED', () => {
    expect(verdict(documentWith(() => {}, map([[uint(1), float64(-35)]])))).toBe('ERR_ATTESTATION_MALFORMED');
  });
});
