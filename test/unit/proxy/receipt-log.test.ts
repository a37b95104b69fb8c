/**
 * The receipt log's reader on malformed input: it reports each bad line by number and never
 * throws, and an empty log is not a verified one. (Genuine logs, tampering and substituted keys
 * are exercised against the real stack in test/e2e/proxy.test.ts.)
 */
import { describe, expect, it } from 'vitest';
import { MAX_LINE_CHARS, verifyReceiptLog } from '../../../proxy/receipt-log.ts';
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
      failures: [],
    });
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
