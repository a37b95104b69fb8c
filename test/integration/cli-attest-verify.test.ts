/**
 * The `nitro-infer attest verify` contract, run as a real child process exactly as users and other
 * tools call it: exit 0 + summary when valid, exit 1 + code when not, exit 2 for usage errors.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  FIXTURES_ABSENT,
  HAVE_FIXTURES,
  PROJECT_ROOT,
  fixtureBytes,
  fixturePath,
  manifest,
  manifestTime,
  shortName,
} from '../helpers/fixtures.ts';

const BIN = path.join(PROJECT_ROOT, 'bin', 'nitro-infer.js');

interface Result {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

async function cli(args: string[], input?: Uint8Array): Promise<Result> {
  const child = promisify(execFile)(process.execPath, [BIN, ...args], {
    cwd: PROJECT_ROOT,
    encoding: 'utf8',
  });
  if (input !== undefined) {
    child.child.stdin!.end(input);
  } else {
    child.child.stdin!.end();
  }
  try {
    const { stdout, stderr } = await child;
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failure = error as { code: number; stdout: string; stderr: string };
    return { code: failure.code, stdout: failure.stdout, stderr: failure.stderr };
  }
}

const entries = manifest();
const genuine = entries
  .filter((entry) => entry.expect === 'valid')
  .map((entry) => [shortName(entry), entry] as const);
const negative = entries
  .filter((entry) => entry.expect === 'invalid')
  .map((entry) => [shortName(entry), entry] as const);

let scratch = '';
beforeAll(async () => {
  scratch = await mkdtemp(path.join(os.tmpdir(), 'nitro-infer-cli-'));
});
afterAll(async () => {
  await rm(scratch, { recursive: true, force: true });
});

describe.skipIf(!HAVE_FIXTURES)('nitro-infer attest verify on every fixture', () => {
  it.each(genuine)('%s: exit 0 with a summary at its own time', async (_name, entry) => {
    const args = [
      'attest',
      'verify',
      fixturePath(entry.file),
      '--at',
      String(entry.timestamp_ms),
      '--expect-pcr',
      `0=${entry.pcr0}`,
    ];
    const result = await cli(entry.debug_mode ? [...args, '--allow-debug'] : args);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('valid attestation document');
    expect(result.stdout).toContain(entry.module_id);
    expect(result.stdout).toContain(`PCR0        ${entry.pcr0}`);
  });

  it.each(genuine)(
    '%s: exit 1 with ERR_ATTESTATION_CERTIFICATE_EXPIRED after its window (JSON)',
    async (_name, entry) => {
      const at = new Date(manifestTime(entry.valid_until_utc) + 60_000).toISOString();
      const result = await cli([
        'attest',
        'verify',
        fixturePath(entry.file),
        '--at',
        at,
        '--allow-debug',
        '--json',
      ]);
      expect(result.code).toBe(1);
      expect(JSON.parse(result.stdout)).toMatchObject({
        valid: false,
        code: 'ERR_ATTESTATION_CERTIFICATE_EXPIRED',
      });
    },
  );

  it.each(negative)('%s: exit 1 with its code', async (name, entry) => {
    const expected = name.includes('bad-signature')
      ? 'ERR_ATTESTATION_SIGNATURE_INVALID'
      : 'ERR_ATTESTATION_ROOT_UNTRUSTED';
    const result = await cli([
      'attest',
      'verify',
      fixturePath(entry.file),
      '--at',
      String(entry.timestamp_ms),
      '--allow-debug',
    ]);
    expect(result.code).toBe(1);
    expect(result.stderr.trim()).toMatch(new RegExp(`^invalid: ${expected}: .+$`));
  });

  it('accepts base64 and hex text, and standard input, and reports a JSON summary', async () => {
    const entry = genuine.find(([name]) => name.startsWith('evervault-prod-2022'))![1];
    const bytes = fixtureBytes(entry.file);
    const base64File = path.join(scratch, 'doc.b64');
    const hexFile = path.join(scratch, 'doc.hex');
    await writeFile(
      base64File,
      Buffer.from(bytes)
        .toString('base64')
        .replace(/(.{76})/g, '$1\n'),
    );
    await writeFile(hexFile, Buffer.from(bytes).toString('hex'));
    const at = ['--at', new Date(entry.timestamp_ms).toISOString()];
    for (const file of [base64File, hexFile]) {
      const result = await cli(['attest', 'verify', file, ...at, '--json']);
      expect(result.code).toBe(0);
      expect(JSON.parse(result.stdout)).toMatchObject({
        valid: true,
        moduleId: entry.module_id,
        debugMode: false,
        nonceBytes: 256,
      });
    }
    const piped = await cli(['attest', 'verify', '-', ...at], bytes);
    expect(piped.code).toBe(0);
  });

  it('applies --pcrs, --nonce and --max-age', async () => {
    const entry = genuine.find(([name]) => name.startsWith('evervault-prod-2022'))![1];
    const pcrsFile = path.join(scratch, 'pcrs.json');
    const measurements = {
      HashAlgorithm: 'Sha384 { ... }',
      PCR0: entry.pcr0,
      PCR1: entry.pcr1,
      PCR2: entry.pcr2,
    };
    await writeFile(pcrsFile, JSON.stringify({ Measurements: measurements }));
    const file = fixturePath(entry.file);
    const at = ['--at', String(entry.timestamp_ms + 1000)];
    expect((await cli(['attest', 'verify', file, ...at, '--pcrs', pcrsFile, '--max-age', '5s'])).code).toBe(
      0,
    );

    await writeFile(pcrsFile, JSON.stringify({ Measurements: { ...measurements, PCR1: entry.pcr2 } }));
    const wrongPcr = await cli(['attest', 'verify', file, ...at, '--pcrs', pcrsFile, '--json']);
    expect([wrongPcr.code, JSON.parse(wrongPcr.stdout).code]).toEqual([1, 'ERR_ATTESTATION_PCR_MISMATCH']);

    const stale = await cli(['attest', 'verify', file, ...at, '--max-age', '500ms', '--json']);
    expect([stale.code, JSON.parse(stale.stdout).code]).toEqual([1, 'ERR_ATTESTATION_STALE']);

    const nonce = await cli(['attest', 'verify', file, ...at, '--nonce', '00'.repeat(256), '--json']);
    expect([nonce.code, JSON.parse(nonce.stdout).code]).toEqual([1, 'ERR_ATTESTATION_NONCE_MISMATCH']);
  });

  it('trusts only the roots given with --root', async () => {
    const entry = genuine.find(([name]) => name.startsWith('marlin'))![1];
    const simulated = path.join(scratch, 'state');
    expect((await cli(['sim', 'attest', '--state-dir', simulated])).code).toBe(0);
    const result = await cli([
      'attest',
      'verify',
      fixturePath(entry.file),
      '--at',
      String(entry.timestamp_ms),
      '--root',
      path.join(simulated, 'simulated-root.pem'),
    ]);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('ERR_ATTESTATION_ROOT_UNTRUSTED');
    const aws = await cli([
      'attest',
      'verify',
      fixturePath(entry.file),
      '--at',
      String(entry.timestamp_ms),
      '--root',
      fixturePath('root/aws-nitro-enclaves-root-g1.pem'),
    ]);
    expect(aws.code).toBe(0);
  });
});

describe.skipIf(HAVE_FIXTURES)('nitro-infer attest verify on every fixture', () => {
  it.skip(FIXTURES_ABSENT, () => {});
});

describe('nitro-infer command line', () => {
  it('sim writes a document, root and pcrs.json that attest verify accepts, and the AWS root refuses', async () => {
    const state = path.join(scratch, 'sim');
    const run = await cli(['sim', 'attest', '--state-dir', state]);
    expect(run.code).toBe(0);
    expect(run.stdout).toContain('AWS root         refused: ERR_ATTESTATION_ROOT_UNTRUSTED');
    const files = ['attestation.cose', '--root', 'simulated-root.pem', '--pcrs', 'pcrs.json'].map((part) =>
      part.startsWith('--') ? part : path.join(state, part),
    );
    const verified = await cli(['attest', 'verify', ...files]);
    expect(verified.code).toBe(0);
    const pcrs = JSON.parse(await readFile(path.join(state, 'pcrs.json'), 'utf8'));
    expect(verified.stdout).toContain(pcrs.Measurements.PCR0);
    const underAws = await cli(['attest', 'verify', path.join(state, 'attestation.cose')]);
    expect(underAws.code).toBe(1);
  });

  it.each([
    [['attest', 'verify'], 'ERR_CLI_USAGE'],
    [['attest', 'verify', 'a', 'b'], 'ERR_CLI_USAGE'],
    [['attest', 'verify', 'x', '--bogus'], 'ERR_CLI_USAGE'],
    [['attest', 'verify', 'x', '--max-age', 'soon'], 'ERR_CLI_USAGE'],
    [['attest', 'verify', 'x', '--expect-pcr', '40=00'], 'ERR_POLICY_INVALID'],
    [['attest', 'verify', '/nonexistent/file'], 'ERR_CLI_INPUT'],
    [['frobnicate'], 'ERR_CLI_USAGE'],
  ])('%j → exit 2 with %s', async (args, code) => {
    const result = await cli(args);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain(code);
  });

  it('a PCR index outside 0–31 is a policy error, exit 2', async () => {
    const result = await cli(['attest', 'verify', 'x', '--expect-pcr', `32=${'00'.repeat(48)}`]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('ERR_POLICY_INVALID');
  });

  it('text that is not a document is exit 1 (malformed) or 2 (undecodable)', async () => {
    const garbage = path.join(scratch, 'garbage.txt');
    await writeFile(garbage, 'not an attestation document!');
    expect((await cli(['attest', 'verify', garbage])).code).toBe(2);
    await writeFile(garbage, 'deadbeef');
    const result = await cli(['attest', 'verify', garbage]);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('ERR_ATTESTATION_MALFORMED');
  });

  it('--help is printed for each verb', async () => {
    for (const args of [
      ['--help'],
      ['attest', 'verify', '--help'],
      ['sim', '--help'],
      ['sim', 'attest', '--help'],
      ['attest', '--help'],
      ['infer', '--help'],
      ['seal', '--help'],
      ['models', '--help'],
      ['enclave', '--help'],
      ['parent', '--help'],
    ]) {
      const result = await cli(args);
      expect(result.code).toBe(0);
      expect(result.stdout).toMatch(/^Usage: nitro-infer/);
    }
  });
});

describe('nitro-infer pins: PCR0 required to talk to an enclave, one value per PCR', () => {
  const A = 'a'.repeat(96);
  const B = 'b'.repeat(96);
  const pcrsFile = async (name: string, measurements: string) => {
    const file = path.join(scratch, name);
    await writeFile(file, `{ "Measurements": { "HashAlgorithm": "Sha384 { ... }", ${measurements} } }`);
    return file;
  };

  it('control: --pcrs and --expect-pcr that agree → the pins pass and the missing input is reported', async () => {
    const file = await pcrsFile('agree.json', `"PCR0": "${A}"`);
    const result = await cli([
      'attest',
      'verify',
      '/nonexistent/doc',
      '--pcrs',
      file,
      '--expect-pcr',
      `0=${A}`,
    ]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('ERR_CLI_INPUT');
  });

  it('--pcrs and --expect-pcr that disagree on PCR0 → exit 2 ERR_POLICY_INVALID', async () => {
    const file = await pcrsFile('disagree.json', `"PCR0": "${A}"`);
    const result = await cli([
      'attest',
      'verify',
      '/nonexistent/doc',
      '--pcrs',
      file,
      '--expect-pcr',
      `0=${B}`,
    ]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('ERR_POLICY_INVALID');
  });

  it('--expect-pcr twice for one index with different values → exit 2 ERR_POLICY_INVALID', async () => {
    const args = ['attest', 'verify', '/nonexistent/doc', '--expect-pcr', `0=${A}`, '--expect-pcr', `0=${B}`];
    const result = await cli(args);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('ERR_POLICY_INVALID');
  });

  it('a pcrs.json naming PCR0 twice → exit 2 ERR_POLICY_INVALID', async () => {
    const file = await pcrsFile('twice.json', `"PCR0": "${A}", "PCR0": "${B}"`);
    const result = await cli(['attest', 'verify', '/nonexistent/doc', '--pcrs', file]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('ERR_POLICY_INVALID');
  });

  it.each(['attest', 'infer'])(
    '%s with only PCR3 pinned → exit 2 ERR_CLI_USAGE before any connection',
    async (verb) => {
      const input = path.join(scratch, 'request.json');
      await writeFile(input, '{"inputs": []}');
      const extra = verb === 'infer' ? ['--model', 'm', '--input', input] : [];
      // Port 9 on loopback is never contacted: the flags are refused first.
      const args = [verb, ...extra, '--endpoint', 'http://127.0.0.1:9', '--expect-pcr', `3=${A}`];
      const result = await cli(args);
      expect(result.code).toBe(2);
      expect(result.stderr).toContain('ERR_CLI_USAGE');
      expect(result.stderr).toContain('--expect-pcr 0=');
    },
  );
});
