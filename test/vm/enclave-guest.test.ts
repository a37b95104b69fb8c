/**
 * The NSM seam on a real kernel (issue 14, DESIGN.md 5 and 8): one TCG guest with QEMU's
 * `virtio-nsm-pci` (an NSM written by others from AWS's specification) behind Debian's `nsm`
 * driver. First the production entry, exactly as the image's ENTRYPOINT starts it, must refuse
 * QEMU's unsigned document at its start-up self-check; then a probe bundled like the entry drives
 * `DeviceNsm` through every call, and every answer is checked here against values computed
 * independently (node:crypto, cbor2), never with the code under test.
 *
 * Needs the cache of test/vm/prepare.sh: without it the suite is skipped (visibly, with the
 * command) — under CI=true it fails instead.
 */
import { createHash } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { AWS_NITRO_ROOT_G1_DER, verifyAttestation } from '../../shared/attestation/index.ts';
import { codeOf } from '../helpers/codes.ts';
import { payloadOf as payloadOfDocument } from '../helpers/documents.ts';
import { bootGuest, vmPrerequisites } from './guest.ts';
import type { GuestRun } from './guest.ts';
import { PROBE_INPUTS } from './nsm-probe-inputs.ts';

const CI = process.env.CI === 'true';
const prerequisites = vmPrerequisites();
const missing = 'missing' in prerequisites ? prerequisites.missing : undefined;

interface ProbeLine {
  readonly name: string;
  readonly result?: unknown;
  readonly code?: string;
}

const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString('hex');
const sha384 = (...parts: Uint8Array[]) => {
  const hash = createHash('sha384');
  for (const part of parts) hash.update(part);
  return hash.digest('hex');
};

/** The document's payload, decoded with cbor2 (test/vm only: no root can verify QEMU's documents). */
const payloadOf = (documentHex: string) => payloadOfDocument(new Uint8Array(Buffer.from(documentHex, 'hex')));

const optionalHex = (value: unknown) => (value === null ? null : hex(value as Uint8Array));

describe.skipIf(missing !== undefined && !CI)(
  `the production enclave and DeviceNsm under Debian's 6.12 kernel with QEMU's virtio-nsm${missing === undefined ? '' : ` (missing: ${missing})`}`,
  () => {
    let run: GuestRun;
    const probe = new Map<string, ProbeLine>();
    const vsock = new Map<string, Record<string, unknown>>();
    const result = (name: string) => {
      const line = probe.get(name);
      if (line === undefined) throw new Error(`the probe printed nothing for ${name}`);
      if (line.code !== undefined) throw new Error(`${name} failed with ${line.code}`);
      return line.result as Record<string, unknown> & string;
    };
    const code = (name: string) => probe.get(name)?.code;

    beforeAll(async () => {
      if (missing !== undefined) throw new Error(`VM prerequisites missing under CI=true: ${missing}`);
      const started = Date.now();
      run = await bootGuest({
        devices: ['virtio-nsm-pci'],
        extraEntries: { 'nsm-probe': 'test/vm/nsm-probe.ts', 'vsock-probe': 'test/vm/vsock-probe.ts' },
        steps: [
          { name: 'device', command: ['stat', '-c', '%A', '/dev/nsm'], root: true },
          // Dockerfile.enclave's ENTRYPOINT, word for word.
          {
            name: 'entry',
            command: ['/nodejs/bin/node', '/app/dist/enclave/main.mjs', '--config', '/app/enclave.json'],
          },
          { name: 'probe', command: ['/nodejs/bin/node', '/app/dist/enclave/nsm-probe.mjs'] },
          { name: 'vsock', command: ['/nodejs/bin/node', '/app/dist/enclave/vsock-probe.mjs'] },
        ],
        timeoutMs: 420_000,
      });
      for (const line of run.steps.get('probe')?.lines ?? []) {
        const match = /NSM_PROBE (\{.*\})\s*$/.exec(line);
        if (match !== null) {
          const parsed = JSON.parse(match[1]!) as ProbeLine;
          probe.set(parsed.name, parsed);
        }
      }
      for (const line of run.steps.get('vsock')?.lines ?? []) {
        const match = /VSOCK_PROBE (\{.*\})\s*$/.exec(line);
        if (match !== null) {
          const parsed = JSON.parse(match[1]!) as Record<string, unknown>;
          vsock.set(String(parsed.name), parsed);
        }
      }
      console.log(
        `VM: ${'versions' in prerequisites ? prerequisites.versions : ''}; boot and steps ${Date.now() - started} ms`,
      );
    }, 480_000);

    it('loads the kernel modules and gets a /dev/nsm the image user may open', () => {
      expect(run.modulesLoaded).toBe(true);
      expect(run.steps.get('device')?.lines.join('\n')).toContain('crw-rw-rw-');
    });

    it("the production entry refuses QEMU's unsigned document at its self-check and exits non-zero", () => {
      const entry = run.steps.get('entry');
      expect(entry?.exitCode).toBe(1);
      const lines = (entry?.lines ?? []).flatMap((line) => {
        try {
          return [JSON.parse(line.trim()) as Record<string, unknown>];
        } catch {
          return [];
        }
      });
      expect(lines.some((line) => line.event === 'enclave.listening')).toBe(false);
      const failure = lines.find((line) => line.event === 'enclave.start_failed');
      expect(failure?.code).toBe('ERR_ATTESTATION_UNSUPPORTED_ALGORITHM');
      // The refusal is the verifier's on this very kind of document: the probe's copy fails the
      // same way here on the host, with AWS's pinned root.
      const document = new Uint8Array(Buffer.from(result('attest.empty'), 'hex'));
      expect(codeOf(() => verifyAttestation(document, { roots: [AWS_NITRO_ROOT_G1_DER] }))).toBe(
        failure?.code,
      );
    });

    it('the probe ran every call and printed no uncaught error', () => {
      expect(run.steps.get('probe')?.exitCode).toBe(0);
      expect(probe.size).toBe(57);
      expect([...probe.values()].filter((line) => line.code?.startsWith('uncaught'))).toEqual([]);
    });

    it('DescribeNSM: version, module, 32 SHA-384 PCRs, none locked on a fresh device', () => {
      expect(result('describeNsm.fresh')).toEqual({
        versionMajor: 1,
        versionMinor: 0,
        versionPatch: 0,
        moduleId: 'i-234-enc5678',
        maxPcrs: 32,
        lockedPcrs: [],
        digest: 'SHA384',
      });
    });

    it.each([
      ['attest.empty', { nonce: null, user_data: null, public_key: null }],
      ['attest.nonceOnly', { nonce: hex(PROBE_INPUTS.nonce), user_data: null, public_key: null }],
      [
        'attest.full',
        {
          nonce: hex(PROBE_INPUTS.nonce),
          user_data: hex(PROBE_INPUTS.userData),
          public_key: hex(PROBE_INPUTS.publicKey),
        },
      ],
    ])(
      'Attestation round-trips nonce, user_data and public_key, and their absence (%s)',
      (name, expected) => {
        const payload = payloadOf(result(name));
        expect({
          nonce: optionalHex(payload.get('nonce')),
          user_data: optionalHex(payload.get('user_data')),
          public_key: optionalHex(payload.get('public_key')),
        }).toEqual(expected);
        expect(payload.get('digest')).toBe('SHA384');
        expect(payload.get('module_id')).toBe('i-234-enc5678');
      },
    );

    it('ExtendPCR gives SHA-384(old ‖ data), and DescribePCR then reads it', () => {
      const before = result('describePcr.before') as unknown as { data: string; locked: boolean };
      expect(before).toEqual({ locked: false, data: '00'.repeat(48) });
      const expected = sha384(Buffer.from(before.data, 'hex'), PROBE_INPUTS.extension);
      expect(result('extendPcr')).toBe(expected);
      expect(result('describePcr.after')).toEqual({ locked: false, data: expected });
    });

    it('an extension over 1024 bytes is refused before the device (which would take it) and changes nothing', () => {
      expect(code('extendPcr.tooLarge')).toBe('ERR_NSM_INPUT_TOO_LARGE');
      expect(result('describePcr.afterTooLarge')).toEqual(result('describePcr.after'));
    });

    it("LockPCR, then ExtendPCR is refused with the NSM's ReadOnlyIndex and the value stays", () => {
      expect(result('lockPcr')).toBeNull();
      expect(code('extendPcr.locked')).toBe('ERR_NSM_READ_ONLY_INDEX');
      expect(result('describePcr.locked')).toEqual({ locked: true, data: result('extendPcr') });
    });

    it('LockPCRs locks exactly 0 to range - 1', () => {
      const range = PROBE_INPUTS.lockedRange;
      expect(result('lockPcrs')).toBeNull();
      expect(code('extendPcr.inLockedRange')).toBe('ERR_NSM_READ_ONLY_INDEX');
      expect(code('extendPcr.aboveLockedRange')).toBeUndefined();
      expect((result('describeNsm.locked') as unknown as { lockedPcrs: number[] }).lockedPcrs).toEqual(
        Array.from({ length: range }, (_, index) => index),
      );
      for (let index = 0; index < 32; index++) {
        expect((result(`describePcr.${index}`) as unknown as { locked: boolean }).locked).toBe(index < range);
      }
    });

    it("a document's PCRs equal DescribePCR's (QEMU lists the locked ones)", () => {
      const pcrs = payloadOf(result('attest.locked')).get('pcrs') as Map<number, Uint8Array>;
      const fromDocument = Object.fromEntries([...pcrs].map(([index, value]) => [index, hex(value)]));
      const described = Object.fromEntries(
        Array.from({ length: PROBE_INPUTS.lockedRange }, (_, index) => [
          index,
          (result(`describePcr.${index}`) as unknown as { data: string }).data,
        ]),
      );
      expect(fromDocument).toEqual(described);
      expect(fromDocument[PROBE_INPUTS.pcr]).toBe(result('extendPcr'));
    });

    it('GetRandom returns 256 fresh bytes per call', () => {
      const [first, second] = [result('getRandom.1'), result('getRandom.2')];
      expect(first).toMatch(/^[0-9a-f]{512}$/);
      expect(second).toMatch(/^[0-9a-f]{512}$/);
      expect(first).not.toBe(second);
    });

    it.each([
      ['attest.userDataTooLarge', 'ERR_NSM_INPUT_TOO_LARGE'],
      ['describePcr.32', 'ERR_NSM_INVALID_INDEX'],
      ['describePcr.300', 'ERR_NSM_INVALID_INDEX'],
      ['extendPcr.32', 'ERR_NSM_INVALID_INDEX'],
      ['lockPcr.32', 'ERR_NSM_INVALID_INDEX'],
      ['lockPcrs.33', 'ERR_NSM_INVALID_INDEX'],
    ])('%s gives %s', (name, expected) => {
      expect(code(name)).toBe(expected);
    });
    it('real AF_VSOCK (loopback, CID 1): the start-up self-check passes and the shipped transport carries 1 MiB both ways', () => {
      expect(run.steps.get('vsock')?.exitCode).toBe(0);
      expect(vsock.get('selfCheck')).toEqual({ name: 'selfCheck', ok: true });
      const echo = vsock.get('echo');
      expect(echo?.bytes).toBe(1024 * 1024);
      expect(echo?.received).toBe(echo?.sent);
    });

    it('vsock connect() to a port nobody listens on fails at once as ERR_TRANSPORT_FAILED with the real errno (ECONNRESET)', () => {
      const failure = vsock.get('noListener');
      expect(failure?.code).toBe('ERR_TRANSPORT_FAILED');
      expect(String(failure?.message)).toMatch(/errno 104\b/);
    });
  },
);
