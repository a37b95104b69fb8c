/** The simulated NSM behaves like the device: PCR semantics, error codes, real document format. */
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { encode } from 'cbor2';
import { verifyAttestation } from '../../../../shared/attestation/index.ts';
import { NSM_RANDOM_BYTES, SimulatedNsm } from '../../../../enclave/nsm/index.ts';
import { SimulatedNitroPki } from '../../../../sim/index.ts';
import { coseParts, payloadOf } from '../../../helpers/documents.ts';
import { codeOfAsync } from '../../../helpers/codes.ts';

const pki = SimulatedNitroPki.create();
const roots = [pki.rootCertificate];
const moduleId = 'i-0123456789abcdef0-enc0123456789abcdef';

function freshNsm(): SimulatedNsm {
  return new SimulatedNsm({
    identity: pki.signingIdentitySource(moduleId),
    moduleId,
    bootPcrs: new Map([
      [0, new Uint8Array(48).fill(0xaa)],
      [1, new Uint8Array(48).fill(0xbb)],
      [2, new Uint8Array(48).fill(0xcc)],
    ]),
  });
}

describe('SimulatedNsm', () => {
  it('produces documents in the real byte format', async () => {
    const document = await freshNsm().attest({
      publicKey: new Uint8Array(294),
      userData: new Uint8Array([1]),
    });
    // Untagged COSE_Sign1 with the protected header {1: -35} and an empty unprotected map: 84 44 a1 01 38 22 a0.
    expect(Buffer.from(document.subarray(0, 7)).toString('hex')).toBe('8444a1013822a0');
    const payload = payloadOf(document);
    expect([...payload.keys()]).toEqual([
      'module_id',
      'digest',
      'timestamp',
      'pcrs',
      'certificate',
      'cabundle',
      'public_key',
      'user_data',
      'nonce',
    ]);
    expect(payload.get('nonce')).toBeNull();
    expect((payload.get('pcrs') as Map<number, Uint8Array>).size).toBe(16);
    expect(coseParts(document)[3]).toHaveLength(96);
  });

  it('extends application PCRs as SHA-384(old ‖ data), which then appear in documents', async () => {
    const nsm = freshNsm();
    const data = new TextEncoder().encode('model digest');
    const expected = createHash('sha384').update(new Uint8Array(48)).update(data).digest();
    expect(Buffer.from(await nsm.extendPcr(16, data))).toEqual(expected);
    expect((await nsm.describePcr(16)).data).toEqual(new Uint8Array(expected));
    const document = await nsm.attest({});
    const verified = verifyAttestation(document, { roots, expectedPcrs: { 16: new Uint8Array(expected) } });
    expect(verified.document.pcrs.size).toBe(17);
  });

  it('refuses to extend boot PCRs and locked PCRs', async () => {
    const nsm = freshNsm();
    expect(await codeOfAsync(() => nsm.extendPcr(0, new Uint8Array(1)))).toBe('ERR_NSM_READ_ONLY_INDEX');
    await nsm.lockPcr(17);
    expect((await nsm.describePcr(17)).locked).toBe(true);
    expect(await codeOfAsync(() => nsm.extendPcr(17, new Uint8Array(1)))).toBe('ERR_NSM_READ_ONLY_INDEX');
    await nsm.lockPcrs(20);
    expect(await codeOfAsync(() => nsm.extendPcr(19, new Uint8Array(1)))).toBe('ERR_NSM_READ_ONLY_INDEX');
    expect(await codeOfAsync(() => nsm.extendPcr(20, new Uint8Array(1)))).toBe('accepted');
  });

  it('answers bad indices and oversized inputs with the NSM error codes', async () => {
    const nsm = freshNsm();
    expect(await codeOfAsync(() => nsm.describePcr(32))).toBe('ERR_NSM_INVALID_INDEX');
    expect(await codeOfAsync(() => nsm.describePcr(-1))).toBe('ERR_NSM_INVALID_INDEX');
    expect(await codeOfAsync(() => nsm.lockPcrs(33))).toBe('ERR_NSM_INVALID_INDEX');
    expect(await codeOfAsync(() => nsm.extendPcr(18, new Uint8Array(1025)))).toBe('ERR_NSM_INPUT_TOO_LARGE');
    expect(await codeOfAsync(() => nsm.attest({ userData: new Uint8Array(1025) }))).toBe(
      'ERR_NSM_INPUT_TOO_LARGE',
    );
    expect(await codeOfAsync(() => nsm.attest({ nonce: new Uint8Array(1024) }))).toBe('accepted');
  });

  it('returns 256 fresh random bytes', async () => {
    const nsm = freshNsm();
    const [a, b] = [await nsm.getRandom(), await nsm.getRandom()];
    expect(a).toHaveLength(NSM_RANDOM_BYTES);
    expect(a).not.toEqual(b);
  });

  it('documents with an indefinite-length payload map and chunked byte strings verify (as from 2025 on)', async () => {
    // Re-sign a payload written with indefinite lengths using a leaf of the same PKI.
    const identity = pki.issueLeaf(moduleId);
    const fields = payloadOf(await freshNsm().attest({}));
    fields.set('certificate', identity.certificate);
    fields.set('cabundle', identity.cabundle);
    const chunks: Uint8Array[] = [new Uint8Array([0xbf])];
    for (const [key, value] of fields) {
      chunks.push(encode(key));
      if (key === 'module_id') {
        chunks.push(
          new Uint8Array([0x7f]),
          encode((value as string).slice(0, 5)),
          encode((value as string).slice(5)),
          new Uint8Array([0xff]),
        );
      } else if (key === 'certificate') {
        const der = value as Uint8Array;
        chunks.push(
          new Uint8Array([0x5f]),
          encode(der.subarray(0, 100)),
          encode(der.subarray(100)),
          new Uint8Array([0xff]),
        );
      } else {
        chunks.push(encode(value));
      }
    }
    chunks.push(new Uint8Array([0xff]));
    const payload = new Uint8Array(Buffer.concat(chunks));
    const { ES384_PROTECTED_HEADER, signatureStructure } =
      await import('../../../../shared/attestation/index.ts');
    const { sign } = await import('node:crypto');
    const signature = sign('sha384', signatureStructure(ES384_PROTECTED_HEADER, payload), {
      key: identity.privateKey,
      dsaEncoding: 'ieee-p1363',
    });
    const tagged = new Uint8Array([
      0xd2,
      ...encode([ES384_PROTECTED_HEADER, new Map(), payload, new Uint8Array(signature)]),
    ]);
    const verified = verifyAttestation(tagged, { roots });
    expect(verified.document.moduleId).toBe(moduleId);
    expect(verified.document.certificate).toEqual(identity.certificate);
  });
});
