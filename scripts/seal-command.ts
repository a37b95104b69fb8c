/**
 * `nitro-infer seal model.onnx --name N --key <kms key arn|alias> --out <file|s3://bucket/key>`
 * (DESIGN.md 2, "Seal a model"): hashes the model, then encrypts it with a fresh KMS data key into
 * the AWS Encryption SDK format, binding the name and SHA-384 in the encryption context; uploads to
 * S3 when asked and prints the version id to pin in production. Runs on the operator's machine.
 */
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { CliError } from '../shared/errors.ts';
import { createSealStream } from '../shared/sealing/index.ts';
import { parseFlags } from './cli-input.ts';
import type { CommandOutput } from './cli-output.ts';
import { operatorKms, uploadToS3 } from './operator-aws.ts';

export const SEAL_HELP = `Usage: nitro-infer seal <model.onnx> --name <name> --key <kms key> --out <file|s3://bucket/key> [options]

Encrypts an ONNX model for nitro-infer: a fresh data key from KMS GenerateDataKey, the AWS
Encryption SDK format (committing suite, signed), the model name and SHA-384 bound in the
encryption context. Only an enclave whose PCRs the key policy names can decrypt it.

Options:
  --name <name>             model name (letters, digits, . _ -)
  --key <arn|alias>         KMS key ARN or alias ARN
  --out <file|s3://…>       where the sealed artifact goes; S3 prints its version id
  --region <region>         AWS region (default AWS_REGION)
  --kms-endpoint <url>      KMS endpoint override (the simulator's in \`npm start\`)
  --kms-ca <pem file>       extra CA for the KMS endpoint (the simulator's)
  --s3-endpoint <url>       S3 endpoint override (path-style addressing)
  --json                    print one JSON object
  -h, --help                show this help

Credentials come from the standard AWS provider chain (environment, profile, instance role).`;

export async function seal(args: readonly string[]): Promise<CommandOutput> {
  const { values, positionals } = parseFlags(
    args,
    {
      name: { type: 'string' },
      key: { type: 'string' },
      out: { type: 'string' },
      region: { type: 'string' },
      'kms-endpoint': { type: 'string' },
      'kms-ca': { type: 'string' },
      's3-endpoint': { type: 'string' },
      json: { type: 'boolean' },
    },
    true,
  );
  if (values.help === true) return { exitCode: 0, stdout: SEAL_HELP };
  if (positionals.length !== 1) throw new CliError('ERR_CLI_USAGE', 'expected exactly one model file');
  for (const flag of ['name', 'key', 'out'] as const) {
    if (values[flag] === undefined) throw new CliError('ERR_CLI_USAGE', `--${flag} is required`);
  }
  const region = values.region ?? process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION;
  if (region === undefined) throw new CliError('ERR_CLI_USAGE', '--region (or AWS_REGION) is required');
  const modelFile = positionals[0] as string;
  let size: number;
  try {
    size = (await stat(modelFile)).size;
  } catch {
    throw new CliError('ERR_CLI_INPUT', `cannot read ${modelFile}`);
  }

  const progress = progressBar(size * 2);
  const hash = createHash('sha384');
  await pipeline(createReadStream(modelFile), counter(progress), hash);
  const sha384 = hash.digest('hex');

  const kms = await operatorKms(region, values['kms-endpoint'], values['kms-ca']);
  const out = values.out as string;
  const toS3 = out.startsWith('s3://');
  const scratch = toS3 ? await mkdtemp(path.join(os.tmpdir(), 'nitro-infer-seal-')) : undefined;
  const sealedFile = scratch === undefined ? out : path.join(scratch, 'sealed');
  try {
    await pipeline(
      createReadStream(modelFile),
      counter(progress),
      createSealStream({
        kms,
        keyArn: values.key as string,
        model: { name: values.name as string, sha384 },
        plaintextLength: size,
      }),
      createWriteStream(sealedFile, { mode: 0o644 }),
    );
    progress.done();
    let versionId: string | undefined;
    const sealedBytes = (await stat(sealedFile)).size;
    let uploadedSource: string | undefined;
    if (toS3) {
      const uploaded = await uploadToS3(out, createReadStream(sealedFile), {
        region,
        ...(values['s3-endpoint'] === undefined ? {} : { endpoint: values['s3-endpoint'] }),
        contentLength: sealedBytes,
        contentType: 'application/vnd.nitro-infer.sealed-model',
      });
      versionId = uploaded.versionId;
      uploadedSource = uploaded.source;
    }
    const source = uploadedSource ?? `file://${path.resolve(out)}`;
    const result = {
      name: values.name,
      sha384,
      bytes: size,
      sealedBytes,
      out,
      ...(versionId === undefined ? {} : { versionId }),
      source,
    };
    return {
      exitCode: 0,
      stdout:
        values.json === true
          ? JSON.stringify(result)
          : [
              `sealed ${values.name} (${size} bytes → ${sealedBytes} bytes)`,
              `  sha384      ${sha384}`,
              ...(versionId === undefined ? [] : [`  version id  ${versionId}`]),
              // Complete as printed: the admin API needs the parent's address and a token.
              `  load with   nitro-infer models load ${values.name} '${source}' --endpoint <parent URL> --token-file <admin tokens file>`,
              ...(toS3 && versionId === undefined
                ? ['  warning     the bucket is not versioned: production loads need ?versionId=']
                : []),
            ].join('\n'),
    };
  } finally {
    kms.destroy();
    if (scratch !== undefined) await rm(scratch, { recursive: true, force: true });
  }
}

interface Progress {
  add(bytes: number): void;
  done(): void;
}

/** A progress bar on stderr for large files when it is a terminal; silent otherwise. */
function progressBar(total: number): Progress {
  const enabled = process.stderr.isTTY === true && total > 8 * 1024 * 1024;
  let seen = 0;
  let last = -1;
  return {
    add(bytes) {
      seen += bytes;
      const percent = Math.floor((seen / total) * 100);
      if (!enabled || percent === last) return;
      last = percent;
      const filled = Math.round(percent / 4);
      process.stderr.write(`\r[${'#'.repeat(filled)}${'.'.repeat(25 - filled)}] ${percent}%`);
    },
    done() {
      if (enabled) process.stderr.write('\n');
    },
  };
}

function counter(progress: Progress): Transform {
  return new Transform({
    transform(chunk: Buffer, _encoding, done) {
      progress.add(chunk.byteLength);
      done(null, chunk);
    },
  });
}
