/**
 * The rolling upgrade's key policies (docs/deploy.md "Rolling upgrade"), rehearsed: the stack is
 * synthesised for each phase — v1 only, v2 with `previousPcrs` v1, v2 only — and its attestation
 * key policy evaluated by the KMS simulator's policy engine for Decrypt requests carrying each
 * build's attestation. Attack: an image mixing measurements of the two builds (v1's image with v2's
 * kernel, or the reverse) while both are allowed; a build retired from the policy asking again.
 */
import { App } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { describe, expect, it } from 'vitest';
import { NitroInferStack } from '../../../infra/stack.ts';
import { isAllowed, parseKeyPolicy } from '../../../sim/kms/key-policy.ts';

const ACCOUNT = '111122223333';
const V1 = new Map([
  [0, '1'.repeat(96)],
  [1, '2'.repeat(96)],
  [2, '3'.repeat(96)],
]);
const V2 = new Map([
  [0, '4'.repeat(96)],
  [1, '5'.repeat(96)],
  [2, '6'.repeat(96)],
]);

/** CloudFormation's `Fn::GetAtt [<id>, Arn]` as the role ARN it will be. */
function resolve(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(resolve);
  if (typeof value !== 'object' || value === null) return value;
  const getAtt = (value as { 'Fn::GetAtt'?: [string, string] })['Fn::GetAtt'];
  if (getAtt !== undefined) return `arn:aws:iam::${ACCOUNT}:role/${getAtt[0]}`;
  return Object.fromEntries(Object.entries(value).map(([key, child]) => [key, resolve(child)]));
}

function attestationKeyPolicy(pcrs: Map<number, string>, previousPcrs?: Map<number, string>) {
  const stack = new NitroInferStack(new App(), 'Upgrade', {
    pcrs,
    ...(previousPcrs === undefined ? {} : { previousPcrs }),
    keyAdminArns: [`arn:aws:iam::${ACCOUNT}:role/deployer`],
    sealerRoleArn: `arn:aws:iam::${ACCOUNT}:role/sealer`,
    certificateArn: `arn:aws:acm:eu-west-1:${ACCOUNT}:certificate/abc`,
    env: { account: ACCOUNT, region: 'eu-west-1' },
  });
  const template = Template.fromStack(stack);
  // The instance role: the one EC2 assumes.
  const [roleId] = Object.entries(template.findResources('AWS::IAM::Role'))
    .filter(([, resource]) => JSON.stringify(resource).includes('ec2.amazonaws.com'))
    .map(([id]) => id);
  const key = Object.values(template.findResources('AWS::KMS::Key')).find((resource) =>
    JSON.stringify(resource).includes('EnclaveDecryptWithAttestation'),
  ) as { Properties: { KeyPolicy: unknown } };
  const statements = parseKeyPolicy(JSON.stringify(resolve(key.Properties.KeyPolicy)));
  const role = `arn:aws:iam::${ACCOUNT}:role/${roleId}`;
  /** Whether an enclave attesting these measurements may Decrypt, as the instance role. */
  return (measured: ReadonlyMap<number, string>, principal = role) =>
    isAllowed(
      statements,
      {
        action: 'kms:Decrypt',
        principal,
        conditions: new Map([
          ['kms:RecipientAttestation:ImageSha384', measured.get(0)!],
          ...[...measured].map(([index, value]) => [`kms:RecipientAttestation:PCR${index}`, value] as const),
        ]),
      },
      ACCOUNT,
    );
}

const mixed = (image: Map<number, string>, rest: Map<number, string>) =>
  new Map([
    [0, image.get(0)!],
    [1, rest.get(1)!],
    [2, rest.get(2)!],
  ]);

describe('rolling upgrade: the key policy of each phase', () => {
  it('before: only v1 decrypts', () => {
    const allowed = attestationKeyPolicy(V1);
    expect(allowed(V1)).toBe(true);
    expect(allowed(V2)).toBe(false);
  }, 60_000);

  it('during (pcrs v2, previousPcrs v1): each build decrypts, no mix of the two, no other principal', () => {
    const allowed = attestationKeyPolicy(V2, V1);
    expect(allowed(V1)).toBe(true);
    expect(allowed(V2)).toBe(true);
    expect(allowed(mixed(V1, V2))).toBe(false);
    expect(allowed(mixed(V2, V1))).toBe(false);
    expect(allowed(V2, `arn:aws:iam::${ACCOUNT}:role/sealer`)).toBe(false);
    expect(allowed(V2, `arn:aws:iam::${ACCOUNT}:role/deployer`)).toBe(false);
  }, 60_000);

  it('after (pcrs v2 only): the retired v1 no longer decrypts', () => {
    const allowed = attestationKeyPolicy(V2);
    expect(allowed(V2)).toBe(true);
    expect(allowed(V1)).toBe(false);
  }, 60_000);
});
