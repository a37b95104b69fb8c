/**
 * `nitro-infer policy --pcrs build/pcrs.json --key-admin <arn> --role <parent role arn> [--sealer <arn>]`:
 * prints the KMS key policy that releases data keys only to an enclave with the build's PCRs.
 */
import { parseNitroCliMeasurements } from '../shared/attestation/index.ts';
import { CliError } from '../shared/errors.ts';
import { buildKeyPolicy } from '../shared/key-policy.ts';
import { readText } from './attest-verify.ts';
import { parseFlags } from './cli-input.ts';
import type { CommandOutput } from './cli-output.ts';

export const POLICY_HELP = `Usage: nitro-infer policy --pcrs <pcrs.json> --key-admin <arn> --role <arn> [--sealer <arn>] [--pcr <list>]

Prints, as JSON, a KMS key policy for nitro-infer:
  - the parent instances' role (--role) may call kms:Decrypt only with a Recipient attestation whose
    PCR0 (kms:RecipientAttestation:ImageSha384), PCR1 and PCR2 — and PCR8 when the EIF is signed —
    equal those in <pcrs.json> (nitro-cli build-enclave / describe-eif output);
  - administrators (--key-admin, repeatable) manage the key and are not granted Decrypt;
  - the sealing operator (--sealer) may call GenerateDataKey, GenerateDataKeyWithoutPlaintext,
    Encrypt and DescribeKey.
There is no statement for the account root, so IAM policies cannot grant Decrypt around it.

Options:
  --pcr <list>      which PCRs to pin, comma separated (default 0,1,2 and 8 when present)
  -h, --help        show this help

Apply it: aws kms put-key-policy --key-id <key> --policy-name default --policy file://policy.json`;

export async function policy(args: readonly string[]): Promise<CommandOutput> {
  const { values } = parseFlags(
    args,
    {
      pcrs: { type: 'string' },
      'key-admin': { type: 'string', multiple: true },
      role: { type: 'string' },
      sealer: { type: 'string' },
      pcr: { type: 'string' },
    },
    false,
  );
  if (values.help === true) return { exitCode: 0, stdout: POLICY_HELP };
  if (values.pcrs === undefined) throw new CliError('ERR_CLI_USAGE', '--pcrs <pcrs.json> is required');
  if (values['key-admin'] === undefined) throw new CliError('ERR_CLI_USAGE', '--key-admin <arn> is required');
  if (values.role === undefined) throw new CliError('ERR_CLI_USAGE', '--role <parent role arn> is required');
  const measured = parseNitroCliMeasurements(await readText(values.pcrs));
  const wanted =
    values.pcr === undefined ? [0, 1, 2, 8] : values.pcr.split(',').map((part) => Number(part.trim()));
  if (values.pcr !== undefined && !wanted.includes(0))
    throw new CliError('ERR_CLI_USAGE', '--pcr must include 0');
  const pcrs = new Map<number, string>();
  for (const index of wanted) {
    const value = measured.get(index);
    if (value === undefined) {
      if (values.pcr !== undefined || index !== 8)
        throw new CliError('ERR_CLI_INPUT', `${values.pcrs} has no PCR${index}`);
      continue;
    }
    pcrs.set(index, Buffer.from(value).toString('hex'));
  }
  try {
    const document = buildKeyPolicy({
      pcrs,
      keyAdministrators: values['key-admin'],
      enclaveRole: values.role,
      ...(values.sealer === undefined ? {} : { sealerRole: values.sealer }),
    });
    return { exitCode: 0, stdout: JSON.stringify(document, null, 2) };
  } catch (error) {
    if (error instanceof RangeError) throw new CliError('ERR_CLI_INPUT', error.message);
    throw error;
  }
}
