/**
 * `nitro-infer build-eif` (also `scripts/build-eif`): Dockerfile.enclave → BuildKit image with
 * reproducible options → `nitro-cli build-enclave` → build/enclave.eif and build/pcrs.json in
 * nitro-cli's own format, one line per PCR on stdout. `--check` builds twice (the second without
 * cache) and fails when the PCRs differ: a build that is not reproducible cannot be audited.
 */
import { execFile } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { parseNitroCliMeasurements } from '../shared/attestation/index.ts';
import { CliError } from '../shared/errors.ts';
import { parseFlags } from './cli-input.ts';
import type { CommandOutput } from './cli-output.ts';

const run = promisify(execFile);

export const BUILD_EIF_HELP = `Usage: nitro-infer build-eif [options]

Builds the enclave image from Dockerfile.enclave with BuildKit (SOURCE_DATE_EPOCH from the last
commit, rewritten layer timestamps, no provenance), converts it with nitro-cli build-enclave, and
writes build/enclave.eif and build/pcrs.json (nitro-cli's output). Prints one line per PCR.

Options:
  --region <region>               the KMS region baked into the image (default AWS_REGION or us-east-1)
  --output <dir>                  where enclave.eif and pcrs.json go (default build)
  --signing-certificate <pem>     sign the EIF (adds PCR8); needs --private-key
  --private-key <pem>             the signing key
  --check                         build twice (second without cache); fail if the PCRs differ
  -h, --help                      show this help

Needs docker (with BuildKit) and nitro-cli (aws-nitro-enclaves-cli) on PATH.`;

function onPath(tool: string): boolean {
  return (process.env.PATH ?? '').split(path.delimiter).some((directory) => {
    try {
      accessSync(path.join(directory, tool), constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

async function git(args: string[], cwd: string): Promise<string | undefined> {
  try {
    return (await run('git', args, { cwd })).stdout.trim();
  } catch {
    return undefined;
  }
}

export async function buildEif(args: readonly string[], cwd = process.cwd()): Promise<CommandOutput> {
  const { values } = parseFlags(
    args,
    {
      region: { type: 'string' },
      output: { type: 'string' },
      'signing-certificate': { type: 'string' },
      'private-key': { type: 'string' },
      check: { type: 'boolean' },
    },
    false,
  );
  if (values.help === true) return { exitCode: 0, stdout: BUILD_EIF_HELP };
  if ((values['signing-certificate'] === undefined) !== (values['private-key'] === undefined)) {
    throw new CliError('ERR_CLI_USAGE', '--signing-certificate and --private-key go together');
  }
  for (const tool of ['docker', 'nitro-cli']) {
    if (!onPath(tool)) {
      throw new CliError(
        'ERR_CLI_USAGE',
        tool === 'docker'
          ? 'docker is not installed or not on PATH (the image is built with BuildKit; see docs/deploy.md)'
          : 'nitro-cli is not installed or not on PATH (install aws-nitro-enclaves-cli on an enclave-enabled instance; see docs/deploy.md)',
      );
    }
  }
  const region = values.region ?? process.env.AWS_REGION ?? 'us-east-1';
  if (!/^[a-z]{2}(-[a-z]+)+-\d$/.test(region))
    throw new CliError('ERR_CLI_USAGE', `${region} is not an AWS region`);
  const output = path.resolve(cwd, values.output ?? 'build');
  await mkdir(output, { recursive: true });
  const epoch = (await git(['log', '-1', '--format=%ct'], cwd)) ?? '0';
  const commit = (await git(['rev-parse', '--short=12', 'HEAD'], cwd)) ?? 'dev';
  const tag = `nitro-infer-enclave:${commit}`;
  const env = { ...process.env, DOCKER_BUILDKIT: '1', SOURCE_DATE_EPOCH: epoch };

  const once = async (attempt: number) => {
    await run(
      'docker',
      [
        'buildx',
        'build',
        '--file',
        'Dockerfile.enclave',
        '--build-arg',
        `SOURCE_DATE_EPOCH=${epoch}`,
        '--build-arg',
        `AWS_REGION=${region}`,
        '--provenance=false',
        '--sbom=false',
        ...(attempt > 0 ? ['--no-cache'] : []),
        '--output',
        `type=docker,name=${tag},rewrite-timestamp=true`,
        '.',
      ],
      { cwd, env, maxBuffer: 64 << 20 },
    ).catch((error: { stderr?: string }) => {
      throw new CliError(
        'ERR_CLI_INPUT',
        `docker build failed: ${(error.stderr ?? '').trim().split('\n').slice(-3).join(' | ')}`,
      );
    });
    const eif = path.join(output, attempt === 0 ? 'enclave.eif' : 'enclave.check.eif');
    const { stdout } = await run(
      'nitro-cli',
      [
        'build-enclave',
        '--docker-uri',
        tag,
        '--output-file',
        eif,
        ...(values['signing-certificate'] === undefined
          ? []
          : [
              '--signing-certificate',
              values['signing-certificate'],
              '--private-key',
              values['private-key'] as string,
            ]),
      ],
      { cwd, env, maxBuffer: 16 << 20 },
    ).catch((error: { stderr?: string }) => {
      throw new CliError(
        'ERR_CLI_INPUT',
        `nitro-cli build-enclave failed: ${(error.stderr ?? '').trim().split('\n').slice(-3).join(' | ')}`,
      );
    });
    // nitro-cli prints progress lines, then the JSON object with "Measurements".
    const json = stdout.slice(stdout.indexOf('{'));
    const measurements = parseNitroCliMeasurements(json);
    return { json, measurements };
  };

  const first = await once(0);
  await writeFile(path.join(output, 'pcrs.json'), `${JSON.stringify(JSON.parse(first.json), null, 2)}\n`);
  const lines = [...first.measurements]
    .sort(([a], [b]) => a - b)
    .map(([index, value]) => `PCR${index} ${Buffer.from(value).toString('hex')}`);
  if (values.check === true) {
    const second = await once(1);
    const differing = [...first.measurements].filter(
      ([index, value]) =>
        !Buffer.from(value).equals(Buffer.from(second.measurements.get(index) ?? new Uint8Array(0))),
    );
    if (differing.length > 0) {
      return {
        exitCode: 1,
        stdout: lines.join('\n'),
        stderr: `error: the build is not reproducible: ${differing.map(([index]) => `PCR${index}`).join(', ')} differ between two builds of ${commit}`,
      };
    }
    lines.push(`reproducible: a second build without cache gave the same PCRs`);
  }
  lines.push(
    `wrote ${path.relative(cwd, path.join(output, 'enclave.eif'))} and ${path.relative(cwd, path.join(output, 'pcrs.json'))}`,
  );
  return { exitCode: 0, stdout: lines.join('\n') };
}
