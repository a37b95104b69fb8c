/**
 * `nitro-infer cluster-key create --key <arn> --out <file|s3://…>`: the OHTTP cluster key for
 * replicas (DESIGN.md 7). KMS generates 32 bytes and returns them only encrypted
 * (GenerateDataKeyWithoutPlaintext): this machine never sees the key; enclaves with the right PCRs
 * obtain it with an attested Decrypt. Point every parent's `clusterKey.source` at the output.
 */
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { CLUSTER_KEY_BYTES, CLUSTER_KEY_CONTEXT } from '../shared/cluster-key.ts';
import { CliError } from '../shared/errors.ts';
import { parseFlags } from './cli-input.ts';
import type { CommandOutput } from './cli-output.ts';
import { operatorKms, uploadToS3 } from './operator-aws.ts';

export const CLUSTER_KEY_HELP = `Usage: nitro-infer cluster-key create --key <kms key arn> --out <file|s3://bucket/key> [options]

Creates the OHTTP cluster key shared by every replica behind one load balancer. KMS generates it
and returns only ciphertext (GenerateDataKeyWithoutPlaintext, encryption context
nitro-infer:purpose=ohttp-cluster-key); only enclaves the key policy accepts can decrypt it, so all
replicas bind the same key config and a client attests once. Set each parent's clusterKey.source
to the output (s3://…?versionId=… in production).

Options:
  --key <arn>            the KMS key (the same attestation policy as the models')
  --out <file|s3://…>    where the blob goes
  --region <region>      AWS region (default AWS_REGION)
  --kms-endpoint <url>   KMS endpoint override;  --kms-ca <pem>  extra CA for it
  --s3-endpoint <url>    S3 endpoint override (path-style)
  -h, --help             show this help`;

export async function clusterKey(args: readonly string[]): Promise<CommandOutput> {
  const { values, positionals } = parseFlags(
    args,
    {
      key: { type: 'string' },
      out: { type: 'string' },
      region: { type: 'string' },
      'kms-endpoint': { type: 'string' },
      'kms-ca': { type: 'string' },
      's3-endpoint': { type: 'string' },
    },
    true,
  );
  if (values.help === true) return { exitCode: 0, stdout: CLUSTER_KEY_HELP };
  if (positionals[0] !== 'create' || positionals.length !== 1)
    throw new CliError('ERR_CLI_USAGE', 'usage: nitro-infer cluster-key create …');
  if (values.key === undefined || values.out === undefined)
    throw new CliError('ERR_CLI_USAGE', '--key and --out are required');
  const region = values.region ?? process.env.AWS_REGION;
  if (region === undefined) throw new CliError('ERR_CLI_USAGE', '--region (or AWS_REGION) is required');
  const kms = await operatorKms(region, values['kms-endpoint'], values['kms-ca']);
  try {
    const generated = await kms.generateDataKeyWithoutPlaintext({
      KeyId: values.key,
      NumberOfBytes: CLUSTER_KEY_BYTES,
      EncryptionContext: { ...CLUSTER_KEY_CONTEXT },
    });
    const blob = generated.CiphertextBlob as Uint8Array;
    let source = `file://${path.resolve(values.out)}`;
    if (values.out.startsWith('s3://')) {
      source = (
        await uploadToS3(values.out, blob, {
          region,
          ...(values['s3-endpoint'] === undefined ? {} : { endpoint: values['s3-endpoint'] }),
        })
      ).source;
    } else {
      await writeFile(values.out, blob, { mode: 0o644 });
    }
    return {
      exitCode: 0,
      stdout: JSON.stringify({ keyArn: generated.KeyId, source, blobBytes: blob.byteLength }),
    };
  } finally {
    kms.destroy();
  }
}
