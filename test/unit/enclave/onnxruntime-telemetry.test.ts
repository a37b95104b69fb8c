/**
 * ONNX Runtime's telemetry writes nothing: a session created and run in a child process with a
 * fresh HOME, an environment without the switch and without the CI variables that would silence
 * ONNX Runtime on their own, leaves HOME empty — through the enclave's inference pool (worker
 * threads) and through a main-thread user that imports the switch module. The control loads
 * onnxruntime-node without the switch and finds ~/.cache/Microsoft/DeveloperTools/.onnxruntime/
 * written, so the check sees the leak it guards against. Children run in their own network
 * namespace where the host allows it, so the control's telemetry cannot reach Microsoft.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { ONNXRUNTIME_TELEMETRY_SWITCH } from '../../../enclave/inference/onnxruntime-env.ts';
import { canIsolateNetwork } from '../../../sim/enclave-process.ts';
import { PROJECT_ROOT } from '../../helpers/fixtures.ts';

const run = promisify(execFile);
const PROBE = path.join(PROJECT_ROOT, 'test', 'helpers', 'onnxruntime-probe.ts');
// Variables onnxruntime 1.30 treats as "running in CI / unit tests" (telemetry silenced): removed,
// so only the switch under test can silence it.
const SILENCING = [
  'CI',
  'TF_BUILD',
  'GITHUB_ACTIONS',
  'GITLAB_CI',
  'CIRCLECI',
  'TRAVIS',
  'JENKINS_URL',
  'CODEBUILD_BUILD_ID',
  'BUILDKITE',
  'TEAMCITY_VERSION',
  'APPVEYOR',
  'BITBUCKET_BUILD_NUMBER',
  'SYSTEM_TEAMFOUNDATIONCOLLECTIONURI',
  'ORT_RUNNING_UNIT_TESTS',
  ONNXRUNTIME_TELEMETRY_SWITCH,
];
const homes: string[] = [];

afterAll(async () => {
  for (const home of homes) await rm(home, { recursive: true, force: true });
});

/** Runs the probe in `mode` with a fresh HOME; returns HOME's entries, recursively. */
async function probe(mode: 'pool' | 'direct' | 'unprotected') {
  const home = await mkdtemp(path.join(os.tmpdir(), 'ni-ort-home-'));
  homes.push(home);
  const env: NodeJS.ProcessEnv = { ...process.env, HOME: home };
  for (const name of SILENCING) delete env[name];
  const node = [process.execPath, '--import', 'tsx', PROBE, mode];
  const [file, ...args] = canIsolateNetwork() ? ['/usr/bin/unshare', '--net', '--', ...node] : node;
  const { stdout } = await run(file!, args, { cwd: PROJECT_ROOT, env, timeout: 60_000 });
  const entries = (await readdir(home, { recursive: true })).map(String).sort();
  return {
    outputs: (JSON.parse(stdout.trim().split('\n').at(-1)!) as { outputs: string[] }).outputs,
    home,
    entries,
  };
}

describe('ONNX Runtime telemetry', () => {
  it('a session created and run through the inference pool writes nothing under a fresh HOME', async () => {
    const { outputs, entries } = await probe('pool');
    expect(outputs).toEqual(['Y']);
    expect(entries).toEqual([]);
  }, 90_000);

  it('a main-thread user that imports the switch module writes nothing either', async () => {
    const { outputs, entries } = await probe('direct');
    expect(outputs).toEqual(['Y']);
    expect(entries).toEqual([]);
  }, 90_000);

  it('control: without the switch, onnxruntime-node writes its telemetry store under HOME', async () => {
    const { outputs, home } = await probe('unprotected');
    expect(outputs).toEqual(['Y']);
    expect(existsSync(path.join(home, '.cache', 'Microsoft', 'DeveloperTools', '.onnxruntime'))).toBe(true);
  }, 90_000);
});
