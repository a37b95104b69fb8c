/**
 * The command line against `nitro-infer sim` (what `npm start` runs) as a separate process: the
 * printed infer command works as printed; seal → models load → infer on a new model; Ctrl-C
 * (SIGINT) stops the stack and its enclave child.
 */
import { execFile, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { denseLayerModel } from '../../sim/onnx-builder.ts';
import { PROJECT_ROOT } from '../helpers/fixtures.ts';

const run = promisify(execFile);
const BIN = path.join(PROJECT_ROOT, 'bin', 'nitro-infer.js');
let directory = '';
let child: ChildProcess;
let ready: {
  endpoint: string;
  inferCommand: string;
  enclavePid: number;
  keyArn: string;
  kms: { endpoint: string; caCertPath: string };
  adminTokensFile: string;
  files: { pcrs: string; root: string };
};
let kmsEnv: Record<string, string> = {};

async function cli(args: string[], env: Record<string, string> = {}) {
  try {
    const { stdout, stderr } = await run(process.execPath, [BIN, ...args], {
      cwd: PROJECT_ROOT,
      env: { ...process.env, ...env },
    });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failed = error as { code: number; stdout: string; stderr: string };
    return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr };
  }
}

beforeAll(async () => {
  directory = await mkdtemp(path.join(os.tmpdir(), 'ni-cli-'));
  child = spawn(
    process.execPath,
    [BIN, 'sim', '--port', '0', '--state-dir', path.join(directory, 's'), '--json'],
    {
      cwd: PROJECT_ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  const lines: string[] = [];
  ready = await new Promise((resolve, reject) => {
    createInterface({ input: child.stdout! }).on('line', (line) => {
      lines.push(line);
      if (line.startsWith('{"ready":"sim"')) resolve(JSON.parse(line));
    });
    createInterface({ input: child.stderr! }).on('line', (line) => lines.push(line));
    child.once('exit', (code) => reject(new Error(`sim exited ${code}:\n${lines.join('\n')}`)));
  });
  const env = await readFile(path.join(directory, 's', 'operator.env'), 'utf8');
  kmsEnv = Object.fromEntries(
    [...env.matchAll(/^export (\w+)=(.*)$/gm)].map((match) => [match[1]!, match[2]!]),
  );
}, 120_000);

afterAll(async () => {
  if (child.exitCode === null) child.kill('SIGKILL');
  await rm(directory, { recursive: true, force: true });
});

describe('nitro-infer against the local stack', () => {
  it('the printed infer command works as printed', async () => {
    const args = ready.inferCommand.replace(/^npx nitro-infer /, '').split(' ');
    const result = await cli([...args, '--receipt', path.join(directory, 'receipt.json')]);
    expect(result.code).toBe(0);
    expect(JSON.parse(result.stdout)).toMatchObject({
      model_name: 'example',
      outputs: [{ name: 'Y', shape: [1, 4] }],
    });
    const receipt = JSON.parse(await readFile(path.join(directory, 'receipt.json'), 'utf8'));
    expect(receipt.model).toBe('example');
    expect(receipt.sha384).toMatch(/^[0-9a-f]{96}$/);
  });

  it('infer --binary sends binary tensors and prints the outputs as JSON', async () => {
    const args = ready.inferCommand.replace(/^npx nitro-infer /, '').split(' ');
    const result = await cli([...args, '--binary', '--json']);
    expect(result.stderr).toBe('');
    const [output] = JSON.parse(result.stdout).outputs;
    // The output came back in the binary section (its size declared) and was printed as numbers.
    expect(output).toMatchObject({ name: 'Y', shape: [1, 4], parameters: { binary_data_size: 16 } });
    expect(output.data).toHaveLength(4);
    expect(output.data.every((value: unknown) => typeof value === 'number')).toBe(true);
  });

  it('seal → models load → infer a new model; refusals exit 1 with a code', async () => {
    const model = path.join(directory, 'tiny.onnx');
    await writeFile(
      model,
      denseLayerModel('tiny', Float32Array.from([1, 2, 3, 4, 5, 6]), Float32Array.from([0.5, -0.5])),
    );
    const sealed = path.join(directory, 'tiny.sealed');
    const sealedRun = await cli(
      [
        'seal',
        model,
        '--name',
        'tiny',
        '--key',
        ready.keyArn,
        '--out',
        sealed,
        '--kms-endpoint',
        ready.kms.endpoint,
        '--kms-ca',
        ready.kms.caCertPath,
        '--json',
      ],
      kmsEnv,
    );
    expect(sealedRun.stderr).toBe('');
    const sealResult = JSON.parse(sealedRun.stdout);
    expect(sealResult.sha384).toMatch(/^[0-9a-f]{96}$/);
    const sealedBytes = await readFile(sealed);
    expect(sealedBytes.includes(Buffer.from(Float32Array.from([1, 2, 3, 4, 5, 6]).buffer))).toBe(false);

    const admin = ['--endpoint', ready.endpoint, '--token-file', ready.adminTokensFile];
    const loaded = await cli(['models', 'load', 'tiny', sealResult.source, ...admin, '--json']);
    expect(loaded.code).toBe(0);
    expect(JSON.parse(loaded.stdout).model.description.sha384).toBe(sealResult.sha384);
    expect(
      JSON.parse((await cli(['models', 'list', ...admin, '--json'])).stdout).models.map(
        (entry: { name: string }) => entry.name,
      ),
    ).toContain('tiny');

    const input = path.join(directory, 'tiny-input.json');
    await writeFile(
      input,
      JSON.stringify({ inputs: [{ name: 'X', shape: [1, 3], datatype: 'FP32', data: [1, 1, 1] }] }),
    );
    const trust = ['--pcrs', ready.files.pcrs, '--root', ready.files.root];
    const inferred = await cli([
      'infer',
      '--endpoint',
      ready.endpoint,
      '--model',
      'tiny',
      '--input',
      input,
      ...trust,
      '--json',
    ]);
    expect(inferred.code).toBe(0);
    // X·W + b with W = [[1,2],[3,4],[5,6]]: [9, 12] + [0.5, -0.5].
    expect(JSON.parse(inferred.stdout).outputs[0].data).toEqual([9.5, 11.5]);

    const wrong = await cli([
      'infer',
      '--endpoint',
      ready.endpoint,
      '--model',
      'tiny',
      '--input',
      input,
      '--expect-pcr',
      `0=${'ab'.repeat(48)}`,
      '--root',
      ready.files.root,
    ]);
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toContain('ERR_ATTESTATION_PCR_MISMATCH');
    const badToken = await cli(['models', 'list', '--endpoint', ready.endpoint], {
      NITRO_INFER_ADMIN_TOKEN: 'x'.repeat(32),
    });
    expect(badToken.code).toBe(2);
    expect(badToken.stderr).toContain('ERR_HTTP_UNAUTHORIZED');
  });

  it('SIGINT stops the stack and its enclave child', async () => {
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    child.kill('SIGINT');
    expect(await exited).toBe(0);
    expect(() => process.kill(ready.enclavePid, 0)).toThrow();
  });
});
