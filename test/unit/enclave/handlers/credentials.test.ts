/**
 * The `credentials` link message: an expiration the parent sends must be a time a Date can hold.
 * A safe integer past ±8.64e15 ms makes an Invalid Date, and credentials carrying one never
 * counted as expired.
 */
import { describe, expect, it } from 'vitest';
import { credentialsHandler } from '../../../../enclave/handlers/credentials.ts';
import { CredentialStore } from '../../../../enclave/kms/credentials.ts';
import type { Connection } from '../../../../enclave/server/link-server.ts';
import { codeOfAsync } from '../../../helpers/codes.ts';

const connection: Connection = { id: 1, onClose: () => {} };
const push = (expiration: unknown) =>
  credentialsHandler(new CredentialStore())(
    new Map<string, unknown>([
      ['accessKeyId', 'ASIAEXAMPLEEXAMPLE01'],
      ['secretAccessKey', 'x'.repeat(40)],
      ['expiration', expiration],
    ]),
    connection,
  );

describe('credentials.expiration', () => {
  it.each([
    ['beyond what a Date holds', 9e15],
    ['negative', -1],
    ['fractional', 1.5],
    ['text', '2026-12-02T00:00:00Z'],
  ])('refuses an expiration %s', async (_, value) => {
    expect(await codeOfAsync(() => push(value))).toBe('ERR_LINK_REQUEST_INVALID');
  });

  it('control: accepts one an hour ahead', async () => {
    expect(await push(Date.now() + 3_600_000)).toEqual({});
  });
});
