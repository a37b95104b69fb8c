/**
 * The receipt log's reader on malformed input: it reports each bad line by number and never
 * throws, and an empty log is not a verified one. On a genuine log written by ReceiptLog (a
 * simulated NSM signs the document): a path that names another model than the receipt, a receipt
 * line repeated, and a log of attestations alone are not verified. (Tampering and substituted keys
 * are exercised against the real stack in test/e2e/proxy.test.ts.)
 */
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Attestation } from '../../../client/index.ts';
import { SimulatedNsm } from '../../../enclave/nsm/index.ts';
import { MAX_LINE_CHARS, ReceiptLog, verifyReceiptLog } from '../../../proxy/receipt-log.ts';
import { encodeUserData } from '../../../shared/binding.ts';
import { sha256, signReceipt } from '../../../shared/receipts.ts';
import { SimulatedNitroPki } from '../../../sim/index.ts';
import { receipts } from '../../../scripts/receipts-command.ts';
import { codeOfAsync } from '../../helpers/codes.ts';

const POLICY = { expectedPcrs: new Map([[0, new Uint8Array(48)]]), roots: [] };

describe('verifyReceiptLog', () => {
  it('reports every bad line by number and does not throw', () => {
    const text = [
      'not json',
      JSON.stringify({ type: 'receipt', receipt: 'AAAA', time: 1 }),
      JSON.stringify({ type: 'mystery' }),
      JSON.stringify({ type: 'attestation', document: 'AAAA' }),
      JSON.stringify({ type: 'receipt', receipt: 'AAAA', time: 1 }),
      'x'.repeat(MAX_LINE_CHARS + 1),
      '',
    ].join('\n');
    const verdict = verifyReceiptLog(text, POLICY);
    expect(verdict.ok).toBe(false);
    expect(verdict.failures.map((failure) => failure.line)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(verdict.failures[0]?.reason).toBe('not JSON');
    expect(verdict.failures[1]?.reason).toMatch(/no verified attestation/);
    expect(verdict.failures[3]?.reason).toMatch(/^ERR_ATTESTATION_/);
    expect(verdict.failures[4]?.reason).toMatch(/no verified attestation/);
  });

  it('an empty log is not verified', () => {
    expect(verifyReceiptLog('\n', POLICY)).toMatchObject({
      ok: false,
      attestations: 0,
      receipts: 0,
      failures: [{ line: 0, reason: expect.stringMatching(/no receipts/) }],
    });
  });
});

describe('verifyReceiptLog on a genuine log', () => {
  const SHA384 = 'ab'.repeat(48);
  const pcr0 = new Uint8Array(randomBytes(48));
  let directory = '';
  let policy: { expectedPcrs: Map<number, Uint8Array>; roots: Uint8Array[] };
  /** The attestation line, then receipt lines for /v2/models/m/infer and its versioned path. */
  let lines: string[] = [];

  beforeAll(async () => {
    const pki = SimulatedNitroPki.create();
    const moduleId = `${pki.instanceId}-enc0123456789abcdef`;
    const nsm = new SimulatedNsm({
      identity: pki.signingIdentitySource(moduleId),
      moduleId,
      bootPcrs: new Map([[0, pcr0]]),
    });
    const { publicKey, privateKey } = generateKeyPairSync('ed25519');
    const receiptKey = new Uint8Array(Buffer.from(publicKey.export({ format: 'jwk' }).x!, 'base64url'));
    const keyConfigBytes = new Uint8Array(randomBytes(41));
    const models = [{ name: 'm', sha384: SHA384 }];
    const document = await nsm.attest({
      userData: encodeUserData({ ohttpKeyConfig: keyConfigBytes, receiptPublicKey: receiptKey, models }),
    });
    const attestation = { moduleId, verifiedAt: Date.now(), document, keyConfigBytes, receiptKey, models };
    directory = await mkdtemp(join(tmpdir(), 'receipt-log-'));
    const file = join(directory, 'receipts.jsonl');
    const log = new ReceiptLog(file);
    for (const [index, path] of ['/v2/models/m/infer', `/v2/models/m/versions/${SHA384}/infer`].entries()) {
      const time = Date.now() + index;
      const receipt = signReceipt(
        {
          model: 'm',
          sha384: SHA384,
          requestSha256: sha256(new Uint8Array([index])),
          responseSha256: sha256(new Uint8Array([index, 1])),
          time,
          keyConfigSha256: sha256(keyConfigBytes),
        },
        privateKey,
      );
      await log.record(attestation as unknown as Attestation, { path, receipt, time });
    }
    lines = (await readFile(file, 'utf8')).trimEnd().split('\n');
    policy = { expectedPcrs: new Map([[0, pcr0]]), roots: [pki.rootCertificate] };
  });

  afterAll(async () => {
    await rm(directory, { recursive: true, force: true });
  });

  const verify = (text: readonly string[]) => verifyReceiptLog(text.join('\n'), policy);
  const withPath = (line: string, path: string) => JSON.stringify({ ...(JSON.parse(line) as object), path });

  it('verifies as written', () => {
    expect(lines).toHaveLength(3);
    expect(verify(lines)).toEqual({ ok: true, attestations: 1, receipts: 2, failures: [] });
  });

  it('refuses a receipt line whose path names another model or version than the receipt', () => {
    for (const path of [
      '/v2/models/other/infer',
      `/v2/models/m/versions/${'cd'.repeat(48)}/infer`,
      '/v2/models/m',
      '/v1/whatever',
    ]) {
      const verdict = verify([lines[0]!, withPath(lines[1]!, path), lines[2]!]);
      expect(verdict.ok).toBe(false);
      expect(verdict.failures).toEqual([{ line: 2, reason: expect.stringMatching(/path/) }]);
    }
  });

  it('refuses a receipt logged twice, also under another path', () => {
    const again = verify([...lines, lines[1]!]);
    expect(again.ok).toBe(false);
    expect(again.failures).toEqual([{ line: 4, reason: expect.stringMatching(/same receipt/) }]);
    const moved = verify([...lines, withPath(lines[1]!, '/v2/models/m/infer?x=1')]);
    expect(moved.failures).toEqual([{ line: 4, reason: expect.stringMatching(/same receipt/) }]);
  });

  it('does not verify a log of attestations alone', () => {
    const verdict = verify([lines[0]!]);
    expect(verdict).toMatchObject({ ok: false, attestations: 1, receipts: 0 });
    expect(verdict.failures).toEqual([{ line: 0, reason: expect.stringMatching(/no receipts/) }]);
  });
});

describe('nitro-infer receipts', () => {
  it('needs a PCR0 pin and one file', async () => {
    expect(await codeOfAsync(() => receipts(['verify', 'log.jsonl']))).toBe('ERR_CLI_USAGE');
    expect(await codeOfAsync(() => receipts(['verify', '--expect-pcr', `0=${'00'.repeat(48)}`]))).toBe(
      'ERR_CLI_USAGE',
    );
    expect(await codeOfAsync(() => receipts(['check']))).toBe('ERR_CLI_USAGE');
    expect((await receipts(['--help'])).exitCode).toBe(0);
  });
});
