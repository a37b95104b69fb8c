/** Key policy evaluation: Deny wins, conditions must hold, unknown operators never grant. */
import { describe, expect, it } from 'vitest';
import { isAllowed, parseKeyPolicy } from '../../../sim/kms/key-policy.ts';

const ACCOUNT = '111122223333';
const CALLER = `arn:aws:iam::${ACCOUNT}:role/parent`;
const PCR0 = 'ab'.repeat(48);

function allowed(statements: unknown[], action: string, conditions: Record<string, string> = {}): boolean {
  const policy = parseKeyPolicy(JSON.stringify({ Version: '2012-10-17', Statement: statements }));
  return isAllowed(
    policy,
    { action, principal: CALLER, conditions: new Map(Object.entries(conditions)) },
    ACCOUNT,
  );
}

const attested = {
  Effect: 'Allow',
  Principal: { AWS: CALLER },
  Action: 'kms:Decrypt',
  Resource: '*',
  Condition: { StringEqualsIgnoreCase: { 'kms:RecipientAttestation:ImageSha384': PCR0.toUpperCase() } },
};

describe('key policies', () => {
  it('allows an attested Decrypt whose measurement matches (case-insensitively)', () => {
    expect(allowed([attested], 'kms:Decrypt', { 'kms:RecipientAttestation:ImageSha384': PCR0 })).toBe(true);
  });

  it('denies when the measurement differs, is absent, or the action is another', () => {
    expect(
      allowed([attested], 'kms:Decrypt', { 'kms:RecipientAttestation:ImageSha384': 'cd'.repeat(48) }),
    ).toBe(false);
    expect(allowed([attested], 'kms:Decrypt')).toBe(false);
    expect(allowed([attested], 'kms:GenerateDataKey', { 'kms:RecipientAttestation:ImageSha384': PCR0 })).toBe(
      false,
    );
  });

  it('denies other principals', () => {
    const other = { ...attested, Principal: { AWS: `arn:aws:iam::${ACCOUNT}:role/someone-else` } };
    expect(allowed([other], 'kms:Decrypt', { 'kms:RecipientAttestation:ImageSha384': PCR0 })).toBe(false);
    const account = { ...attested, Principal: { AWS: `arn:aws:iam::${ACCOUNT}:root` } };
    expect(allowed([account], 'kms:Decrypt', { 'kms:RecipientAttestation:ImageSha384': PCR0 })).toBe(true);
  });

  it('lets an explicit Deny win over any Allow', () => {
    const deny = {
      Effect: 'Deny',
      Principal: '*',
      Action: 'kms:*',
      Resource: '*',
      Condition: { StringNotEquals: { 'kms:RecipientAttestation:PCR8': 'ff' } },
    };
    expect(
      allowed([attested, deny], 'kms:Decrypt', {
        'kms:RecipientAttestation:ImageSha384': PCR0,
        'kms:RecipientAttestation:PCR8': '00',
      }),
    ).toBe(false);
    expect(
      allowed([attested, deny], 'kms:Decrypt', {
        'kms:RecipientAttestation:ImageSha384': PCR0,
        'kms:RecipientAttestation:PCR8': 'ff',
      }),
    ).toBe(true);
  });

  it('never grants through an operator it does not know', () => {
    const unknown = {
      ...attested,
      Condition: { NumericLessThan: { 'kms:RecipientAttestation:ImageSha384': '1' } },
    };
    expect(allowed([unknown], 'kms:Decrypt', { 'kms:RecipientAttestation:ImageSha384': PCR0 })).toBe(false);
  });

  it('matches action wildcards and StringLike patterns', () => {
    const wildcard = {
      Effect: 'Allow',
      Principal: '*',
      Action: 'kms:Gen*',
      Resource: '*',
      Condition: { StringLike: { 'kms:EncryptionContext:nitro-infer:model': 'ocr-*' } },
    };
    expect(
      allowed([wildcard], 'kms:GenerateDataKey', { 'kms:EncryptionContext:nitro-infer:model': 'ocr-det' }),
    ).toBe(true);
    expect(
      allowed([wildcard], 'kms:GenerateDataKey', { 'kms:EncryptionContext:nitro-infer:model': 'other' }),
    ).toBe(false);
  });

  it('rejects malformed policies', () => {
    expect(() => parseKeyPolicy('{')).toThrow();
    expect(() =>
      parseKeyPolicy(JSON.stringify({ Statement: [{ Effect: 'Maybe', Principal: '*', Action: 'kms:*' }] })),
    ).toThrow(/Effect/);
    expect(() =>
      parseKeyPolicy(JSON.stringify({ Statement: [{ Effect: 'Allow', Action: 'kms:*' }] })),
    ).toThrow(/Principal/);
  });
});
