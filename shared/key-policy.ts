/**
 * The KMS key policy that releases data keys only to our enclave (DESIGN.md 7; AWS "Condition keys
 * for AWS Nitro Enclaves"). The parent's role may call Decrypt only with a Recipient attestation whose
 * PCRs equal the build's; administrators manage the key but are not granted Decrypt; an optional
 * sealer role may generate data keys and encrypt. No "Enable IAM policies" statement for the account
 * root: IAM policies in the account therefore cannot grant Decrypt around these conditions.
 * Pure: `nitro-infer policy`, the local stack and the CDK app all call it.
 */
/** A SHA-384 PCR value as hex. */
const PCR_HEX_LENGTH_PATTERN = /^[0-9a-fA-F]{96}$/;

/** What the policy binds. */
export interface KeyPolicyOptions {
  /** Expected PCRs as lowercase hex: PCR0 (image), PCR1 (kernel), PCR2 (application), PCR8 (signing cert). */
  readonly pcrs: ReadonlyMap<number, string>;
  /** Who administers the key (an IAM role or user ARN). */
  readonly keyAdministrators: readonly string[];
  /** The parent instances' role: Decrypt with attestation only. */
  readonly enclaveRole: string;
  /** The operator role that seals models (GenerateDataKey, Encrypt); optional. */
  readonly sealerRole?: string;
}

/** PCRs a key policy may pin, with their condition keys (PCR0 also as ImageSha384). */
export const POLICY_PCRS = [0, 1, 2, 8] as const;

/** What key administrators may do: everything but use the key (AWS's default administrator set). */
export const KEY_ADMIN_ACTIONS: readonly string[] = [
  'kms:Create*',
  'kms:Describe*',
  'kms:Enable*',
  'kms:List*',
  'kms:Put*',
  'kms:Update*',
  'kms:Revoke*',
  'kms:Disable*',
  'kms:Get*',
  'kms:Delete*',
  'kms:TagResource',
  'kms:UntagResource',
  'kms:ScheduleKeyDeletion',
  'kms:CancelKeyDeletion',
  'kms:RotateKeyOnDemand',
];

const ARN = /^arn:aws[a-z-]*:iam::\d{12}:(root|(role|user)\/[\w+=,.@/-]{1,512})$/;

/**
 * Builds the policy document.
 * @throws RangeError for a missing PCR0, a malformed PCR or ARN.
 */
export function buildKeyPolicy(options: KeyPolicyOptions): Record<string, unknown> {
  const pcr0 = options.pcrs.get(0);
  if (pcr0 === undefined) throw new RangeError('the policy needs PCR0 (the enclave image)');
  for (const [index, value] of options.pcrs) {
    if (!(POLICY_PCRS as readonly number[]).includes(index))
      throw new RangeError(`PCR${index} is not one a key policy pins (0, 1, 2, 8)`);
    if (!PCR_HEX_LENGTH_PATTERN.test(value)) throw new RangeError(`PCR${index} must be 96 hex digits`);
    if (/^0+$/.test(value))
      throw new RangeError(`PCR${index} is zero: a debug-mode measurement must never be pinned`);
  }
  for (const arn of [
    ...options.keyAdministrators,
    options.enclaveRole,
    ...(options.sealerRole === undefined ? [] : [options.sealerRole]),
  ]) {
    if (!ARN.test(arn)) throw new RangeError(`${arn} is not an IAM role, user or account root ARN`);
  }
  if (options.keyAdministrators.length === 0) throw new RangeError('name at least one key administrator');

  const attestation = attestationCondition(options.pcrs);
  const statements: Record<string, unknown>[] = [
    {
      Sid: 'KeyAdministration',
      Effect: 'Allow',
      Principal: {
        AWS:
          options.keyAdministrators.length === 1
            ? options.keyAdministrators[0]
            : [...options.keyAdministrators],
      },
      Action: [...KEY_ADMIN_ACTIONS],
      Resource: '*',
    },
    {
      Sid: 'EnclaveDecryptWithAttestation',
      Effect: 'Allow',
      Principal: { AWS: options.enclaveRole },
      Action: 'kms:Decrypt',
      Resource: '*',
      Condition: { StringEqualsIgnoreCase: attestation },
    },
  ];
  if (options.sealerRole !== undefined) {
    statements.push({
      Sid: 'SealModels',
      Effect: 'Allow',
      Principal: { AWS: options.sealerRole },
      Action: [
        'kms:GenerateDataKey',
        'kms:GenerateDataKeyWithoutPlaintext',
        'kms:Encrypt',
        'kms:DescribeKey',
      ],
      Resource: '*',
    });
  }
  return { Version: '2012-10-17', Id: 'nitro-infer-attested-decrypt', Statement: statements };
}

/**
 * The `StringEqualsIgnoreCase` condition block for attested Decrypt: PCR0 as
 * `kms:RecipientAttestation:ImageSha384`, the others as `kms:RecipientAttestation:PCR<n>`.
 */
export function attestationCondition(pcrs: ReadonlyMap<number, string>): Record<string, string> {
  const pcr0 = pcrs.get(0);
  if (pcr0 === undefined) throw new RangeError('the policy needs PCR0 (the enclave image)');
  const condition: Record<string, string> = { 'kms:RecipientAttestation:ImageSha384': pcr0.toLowerCase() };
  for (const [index, value] of [...pcrs].sort(([a], [b]) => a - b)) {
    if (index !== 0) condition[`kms:RecipientAttestation:PCR${index}`] = value.toLowerCase();
  }
  return condition;
}
