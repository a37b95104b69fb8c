/**
 * DescribeNSM: the request byte for byte, the response layout (written out by hand from nsm-api's
 * `Response::DescribeNSM` and QEMU's virtio-nsm, which encodes `locked_pcrs` as an array), each
 * malformed field refused with `ERR_NSM_INTERNAL`, and the simulation answering like the device.
 */
import { describe, expect, it } from 'vitest';
import { decodeDescribeNsmResponse, encodeDescribeNsmRequest } from '../../../../enclave/nsm/nsm-codec.ts';
import { SimulatedNsm } from '../../../../enclave/nsm/index.ts';
import { SimulatedNitroPki } from '../../../../sim/index.ts';
import { codeOf } from '../../../helpers/codes.ts';

const ascii = (text: string) => Buffer.from(text).toString('hex');
const text = (value: string) => `${(0x60 + value.length).toString(16)}${ascii(value)}`;
const bytes = (hexText: string) => new Uint8Array(Buffer.from(hexText.replace(/\s+/g, ''), 'hex'));

/** QEMU's answer on a fresh device after LockPCR 16 and 0. */
function response(
  fields: { digest?: string; maxPcrs?: string; locked?: string; major?: string } = {},
): Uint8Array {
  return bytes(
    `a1 ${text('DescribeNSM')} a7` +
      ` ${text('digest')} ${fields.digest ?? text('SHA384')}` +
      ` ${text('max_pcrs')} ${fields.maxPcrs ?? '18 20'}` +
      ` ${text('module_id')} ${text('i-234-enc5678')}` +
      ` ${text('locked_pcrs')} ${fields.locked ?? '82 10 00'}` +
      ` ${text('version_major')} ${fields.major ?? '01'}` +
      ` ${text('version_minor')} 00 ${text('version_patch')} 00`,
  );
}

describe('DescribeNSM', () => {
  it('is the bare text "DescribeNSM" (a unit variant)', () => {
    expect(Buffer.from(encodeDescribeNsmRequest()).toString('hex')).toBe(text('DescribeNSM'));
  });

  it('decodes the response, locked PCRs ascending', () => {
    expect(decodeDescribeNsmResponse(response())).toEqual({
      versionMajor: 1,
      versionMinor: 0,
      versionPatch: 0,
      moduleId: 'i-234-enc5678',
      maxPcrs: 32,
      lockedPcrs: [0, 16],
      digest: 'SHA384',
    });
  });

  it('decodes a response listing all 32 PCRs as locked (LockPCRs 32; the decoder bounds items)', () => {
    // 0x98 0x20: an array of 32; indices 0-23 are one byte each, 24-31 are 0x18 0x18…0x18 0x1f.
    const all = Array.from({ length: 32 }, (_, index) =>
      index < 24 ? index.toString(16).padStart(2, '0') : `18 ${index.toString(16)}`,
    ).join(' ');
    const decoded = decodeDescribeNsmResponse(response({ locked: `98 20 ${all}` }));
    expect(decoded.lockedPcrs).toEqual(Array.from({ length: 32 }, (_, index) => index));
  });

  it.each([
    ['an unknown digest', { digest: text('MD5') }],
    ['a locked index at max_pcrs', { locked: '81 18 20' }],
    ['a repeated locked index', { locked: '82 10 10' }],
    ['locked_pcrs not an array', { locked: '10' }],
    ['a negative version', { major: '20' }],
    ['a version over u16', { major: '1a 00010000' }],
    ['max_pcrs as text', { maxPcrs: text('32') }],
  ])('refuses %s with ERR_NSM_INTERNAL', (_name, fields) => {
    expect(codeOf(() => decodeDescribeNsmResponse(response(fields)))).toBe('ERR_NSM_INTERNAL');
  });

  it('maps an NSM error answer to its code', () => {
    expect(
      codeOf(() => decodeDescribeNsmResponse(bytes(`a1 ${text('Error')} ${text('InvalidOperation')}`))),
    ).toBe('ERR_NSM_INVALID_OPERATION');
  });

  it('the simulated NSM reports its module, 32 SHA-384 PCRs and which are locked', async () => {
    const pki = SimulatedNitroPki.create();
    const moduleId = 'i-0123456789abcdef0-enc0123456789abcdef';
    const nsm = new SimulatedNsm({
      identity: pki.signingIdentitySource(moduleId),
      moduleId,
      bootPcrs: new Map(),
    });
    await nsm.lockPcr(20);
    expect(await nsm.describeNsm()).toEqual({
      versionMajor: 1,
      versionMinor: 0,
      versionPatch: 0,
      moduleId,
      maxPcrs: 32,
      lockedPcrs: [...Array.from({ length: 16 }, (_, index) => index), 20],
      digest: 'SHA384',
    });
  });
});
