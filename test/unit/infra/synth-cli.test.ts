/**
 * The synth command exactly as docs/deploy.md prints it, through the CDK CLI (a devDependency):
 * `npm run synth -- -c pcrs=… -c keyAdmins=… -c certificateArn=…`. The CLI passes `-c` to
 * infra/app.ts as CDK_CONTEXT_JSON; before, the flags were ignored and synth died on a missing
 * build/pcrs.json. One real CLI run (about 20 s on a loaded machine); the stack's properties are
 * asserted in stack.test.ts.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PROJECT_ROOT } from '../../helpers/fixtures.ts';

const run = promisify(execFile);
let directory = '';

const measurements = (digit: string) =>
  JSON.stringify({
    Measurements: {
      HashAlgorithm: 'Sha384 { ... }',
      PCR0: digit.repeat(96),
      PCR1: 'b'.repeat(96),
      PCR2: 'c'.repeat(96),
    },
  });

beforeAll(async () => {
  directory = await mkdtemp(path.join(os.tmpdir(), 'ni-synth-'));
  await writeFile(path.join(directory, 'pcrs.json'), measurements('a'));
  await writeFile(path.join(directory, 'pcrs-previous.json'), measurements('d'));
});
afterAll(async () => {
  await rm(directory, { recursive: true, force: true });
});

const synth = (...flags: string[]) =>
  run('npm', ['run', '--silent', 'synth', '--', '--output', path.join(directory, 'cdk.out'), ...flags], {
    cwd: PROJECT_ROOT,
    env: { ...process.env, CDK_DISABLE_CLI_TELEMETRY: 'true' },
    timeout: 120_000,
  });

describe('npm run synth with the documented -c flags', () => {
  it('writes a template pinning the given PCRs, the previous build during an upgrade, the release prefix', async () => {
    await synth(
      '-c',
      `pcrs=${path.join(directory, 'pcrs.json')}`,
      '-c',
      `previousPcrs=${path.join(directory, 'pcrs-previous.json')}`,
      '-c',
      'keyAdmins=arn:aws:iam::111122223333:role/deployer',
      '-c',
      'certificateArn=arn:aws:acm:eu-west-1:111122223333:certificate/abc',
      '-c',
      'releasePrefix=release/v2/',
    );
    const template = await readFile(path.join(directory, 'cdk.out', 'NitroInfer.template.json'), 'utf8');
    expect(template).toContain('a'.repeat(96));
    expect(template).toContain('d'.repeat(96));
    expect(template).toContain('EnclaveDecryptWithAttestationPreviousBuild');
    expect(template).toContain('/release/v2/nitro-infer.tgz');
    expect(template).toContain('arn:aws:acm:eu-west-1:111122223333:certificate/abc');
  }, 150_000);

  it('a missing pcrs file or key admin is a one-line error, not a stack trace', async () => {
    const missing = await synth(
      '-c',
      `pcrs=${path.join(directory, 'absent.json')}`,
      '-c',
      'keyAdmins=arn:aws:iam::111122223333:role/deployer',
      '-c',
      'certificateArn=arn:aws:acm:eu-west-1:111122223333:certificate/abc',
    ).catch((error: { code: number; stderr: string }) => error);
    expect((missing as { code: number }).code).not.toBe(0);
    expect((missing as { stderr: string }).stderr).toContain('absent.json: no such file');
    expect((missing as { stderr: string }).stderr).not.toMatch(/^\s+at /m);
  }, 150_000);
});
