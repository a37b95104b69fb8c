/**
 * build-eif and the deploy scripts with stand-in `docker`, `nitro-cli` and `systemctl` on PATH
 * (neither Docker nor nitro-cli runs here). The stand-ins record their arguments and print
 * nitro-cli's real output shape; the tests check the commands, the files written, and the
 * failures: missing tools, a build whose PCRs differ between two runs, debug mode's warning.
 */
import { execFile, spawn } from 'node:child_process';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { buildEif } from '../../scripts/build-eif-command.ts';
import { ParentConfigSchema, resolveConfig } from '../../shared/config.ts';
import { PROJECT_ROOT } from '../helpers/fixtures.ts';

const run = promisify(execFile);
let directory = '';
let bin = '';
const PATH = process.env.PATH;

/** A stand-in that appends its arguments to <name>.log; `body` runs after. */
async function standIn(name: string, body = ''): Promise<void> {
  const file = path.join(bin, name);
  await writeFile(
    file,
    `#!/usr/bin/env bash\necho "$*" >> "${path.join(directory, `${name}.log`)}"\n${body}\n`,
  );
  await chmod(file, 0o755);
}

const NITRO_CLI_BUILD = (pcr0: string) => `
if [ "$1" = build-enclave ]; then
  out=""; while [ $# -gt 0 ]; do [ "$1" = --output-file ] && out="$2"; shift; done
  printf 'EIF' > "$out"
  echo "Start building the Enclave Image..."
  echo "Enclave Image successfully created."
  cat <<JSON
{
  "Measurements": {
    "HashAlgorithm": "Sha384 { ... }",
    "PCR0": "${pcr0}",
    "PCR1": "${'b'.repeat(96)}",
    "PCR2": "${'c'.repeat(96)}"
  }
}
JSON
fi`;

beforeAll(async () => {
  directory = await mkdtemp(path.join(os.tmpdir(), 'ni-deploy-'));
  bin = path.join(directory, 'bin');
  await run('mkdir', ['-p', bin]);
});
afterAll(async () => {
  process.env.PATH = PATH;
  await rm(directory, { recursive: true, force: true });
});

describe('build-eif', () => {
  it('fails clearly when docker or nitro-cli is missing', async () => {
    process.env.PATH = bin;
    await expect(buildEif([], PROJECT_ROOT)).rejects.toThrow(/docker is not installed/);
    await standIn('docker');
    await expect(buildEif([], PROJECT_ROOT)).rejects.toThrow(/nitro-cli is not installed/);
  });

  it('builds with reproducible options, writes pcrs.json in nitro-cli format, prints one line per PCR', async () => {
    await standIn('docker');
    await standIn('nitro-cli', NITRO_CLI_BUILD('a'.repeat(96)));
    process.env.PATH = `${bin}${path.delimiter}${PATH}`;
    const output = path.join(directory, 'build');
    const result = await buildEif(['--output', output, '--region', 'eu-west-1'], PROJECT_ROOT);
    expect(result.exitCode).toBe(0);
    expect(result.stdout).toContain(`PCR0 ${'a'.repeat(96)}`);
    expect(result.stdout).toContain(`PCR2 ${'c'.repeat(96)}`);
    const pcrs = JSON.parse(await readFile(path.join(output, 'pcrs.json'), 'utf8'));
    expect(pcrs.Measurements.PCR1).toBe('b'.repeat(96));
    const docker = await readFile(path.join(directory, 'docker.log'), 'utf8');
    expect(docker).toMatch(
      /^buildx build --file Dockerfile.enclave --build-arg SOURCE_DATE_EPOCH=\d+ --build-arg AWS_REGION=eu-west-1 --provenance=false --sbom=false --output type=docker,name=nitro-infer-enclave:\w+,rewrite-timestamp=true \.$/m,
    );
    const nitro = await readFile(path.join(directory, 'nitro-cli.log'), 'utf8');
    expect(nitro).toContain(`build-enclave --docker-uri nitro-infer-enclave:`);
    expect(nitro).toContain(`--output-file ${path.join(output, 'enclave.eif')}`);
  });

  it('--check passes when two builds agree and fails when PCR0 differs', async () => {
    const output = path.join(directory, 'build-check');
    expect((await buildEif(['--output', output, '--check'], PROJECT_ROOT)).exitCode).toBe(0);
    // A non-reproducible build: PCR0 changes with every run.
    const counter = path.join(directory, 'count');
    await standIn(
      'nitro-cli',
      `n=$(cat "${counter}" 2>/dev/null || echo 0); n=$((n+1)); echo $n > "${counter}"\n` +
        NITRO_CLI_BUILD('$(printf "%096d" $n)').replace('"${pcr0}"', '"$(printf "%096d" $n)"'),
    );
    const result = await buildEif(['--output', output, '--check'], PROJECT_ROOT);
    expect(result.exitCode).toBe(1);
    expect(result.stderr).toContain('not reproducible: PCR0 differ');
    expect(await readFile(path.join(directory, 'docker.log'), 'utf8')).toContain('--no-cache');
  });
});

describe('deploy scripts', () => {
  const env = () => ({
    ...process.env,
    PATH: `${bin}${path.delimiter}${PATH}`,
    NITRO_ENCLAVES_ETC: path.join(directory, 'etc-ne'),
    NITRO_INFER_ETC: path.join(directory, 'etc-ni'),
    SYSTEMD_DIR: path.join(directory, 'units'),
  });

  it('run-enclave sizes the allocator at ≥ 4× the EIF and runs with a fixed CID', async () => {
    await standIn('nitro-cli');
    await standIn('systemctl');
    const eif = path.join(directory, 'big.eif');
    await writeFile(eif, Buffer.alloc(700 * 1024 * 1024 + 1, 0));
    const { stdout } = await run(
      'bash',
      [path.join(PROJECT_ROOT, 'scripts/deploy/run-enclave.sh'), '--eif', eif, '--cpus', '4', '--cid', '20'],
      { env: env() },
    );
    expect(stdout).toContain('CID 20');
    const allocator = await readFile(path.join(directory, 'etc-ne', 'allocator.yaml'), 'utf8');
    expect(allocator).toContain('memory_mib: 2804'); // 701 MiB × 4
    expect(allocator).toContain('cpu_count: 4');
    const nitro = (await readFile(path.join(directory, 'nitro-cli.log'), 'utf8')).trim().split('\n').at(-1);
    expect(nitro).toBe(
      `run-enclave --eif-path ${eif} --cpu-count 4 --memory 2804 --enclave-cid 20 --enclave-name nitro-infer`,
    );
    expect(await readFile(path.join(directory, 'systemctl.log'), 'utf8')).toContain(
      'restart nitro-enclaves-allocator.service',
    );
    // Run again as systemd would after a failure: the reservation is unchanged, the allocator stays.
    await run(
      'bash',
      [path.join(PROJECT_ROOT, 'scripts/deploy/run-enclave.sh'), '--eif', eif, '--cpus', '4', '--cid', '20'],
      { env: env() },
    );
    const restarts = (await readFile(path.join(directory, 'systemctl.log'), 'utf8')).match(
      /^restart nitro-enclaves-allocator\.service$/gm,
    );
    expect(restarts).toHaveLength(1);
    await rm(eif);
  });

  it('refuses too little memory; debug mode only with the flag, and loudly', async () => {
    const eif = path.join(directory, 'small.eif');
    await writeFile(eif, Buffer.alloc(1024));
    const script = path.join(PROJECT_ROOT, 'scripts/deploy/run-enclave.sh');
    const tooSmall = await run('bash', [script, '--eif', eif, '--memory-mib', '0'], { env: env() }).catch(
      (error: { code: number; stderr: string }) => error,
    );
    expect((tooSmall as { code: number }).code).toBe(2);
    const normal = await run('bash', [script, '--eif', eif], { env: env() });
    expect(normal.stderr).not.toContain('DEBUG MODE');
    expect(
      (await readFile(path.join(directory, 'nitro-cli.log'), 'utf8')).trim().split('\n').at(-1),
    ).not.toContain('--debug-mode');
    const debug = await run('bash', [script, '--eif', eif, '--debug-mode'], { env: env() });
    expect(debug.stderr).toContain('KMS will refuse to release any key');
    expect(
      (await readFile(path.join(directory, 'nitro-cli.log'), 'utf8')).trim().split('\n').at(-1),
    ).toContain('--debug-mode');
  });

  it('--supervise starts a dead enclave again, says so, backs off, and terminates it on SIGTERM', async () => {
    // describe-enclaves reads a state file: run-enclave writes it, the test deletes it (the enclave died).
    const state = path.join(directory, 'enclave.state');
    await standIn(
      'nitro-cli',
      `case "$1" in
  run-enclave) echo '[{"EnclaveName": "nitro-infer", "EnclaveCID": 16, "State": "RUNNING"}]' > "${state}" ;;
  describe-enclaves) cat "${state}" 2>/dev/null || echo '[]' ;;
  terminate-enclave) rm -f "${state}" ;;
esac`,
    );
    await rm(path.join(directory, 'nitro-cli.log'), { force: true });
    const eif = path.join(directory, 'small.eif');
    await writeFile(eif, Buffer.alloc(1024));
    const script = path.join(PROJECT_ROOT, 'scripts/deploy/run-enclave.sh');
    const child = spawn(
      'bash',
      [script, '--eif', eif, '--supervise', '--poll-seconds', '1', '--backoff-seconds', '1'],
      { env: env(), stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const runs = async () =>
      (
        (await readFile(path.join(directory, 'nitro-cli.log'), 'utf8').catch(() => '')).match(
          /^run-enclave /gm,
        ) ?? []
      ).length;
    const until = async (check: () => Promise<boolean>) => {
      for (let i = 0; i < 150 && !(await check()); i += 1) await new Promise((r) => setTimeout(r, 100));
    };
    await until(async () => (await runs()) === 1);
    expect(await runs()).toBe(1);
    await rm(state); // the enclave dies
    await until(async () => (await runs()) === 2);
    expect(await runs()).toBe(2);
    expect(output).toMatch(/enclave exited after \d+ s/);
    expect(output).toContain('restarting the enclave in 1 s');
    await rm(state); // dies again at once: the wait doubles
    await until(async () => (await runs()) === 3);
    expect(output).toContain('restarting the enclave in 2 s');
    const exited = new Promise((resolve) => child.on('close', resolve));
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(await readFile(path.join(directory, 'nitro-cli.log'), 'utf8')).toMatch(
      /terminate-enclave --enclave-name nitro-infer\n$/,
    );
  });

  it('install-parent writes the KMS-only allow-list, the units and a production config', async () => {
    await run(
      'bash',
      [path.join(PROJECT_ROOT, 'scripts/deploy/install-parent.sh'), '--region', 'eu-central-1'],
      { env: env() },
    );
    const allow = await readFile(path.join(directory, 'etc-ne', 'vsock-proxy.yaml'), 'utf8');
    expect(allow).toContain('{address: kms.eu-central-1.amazonaws.com, port: 443}');
    expect(allow.match(/address:/g)).toHaveLength(1);
    const proxy = await readFile(path.join(directory, 'units', 'nitro-infer-kms-proxy.service'), 'utf8');
    expect(proxy).toContain('vsock-proxy 8000 kms.eu-central-1.amazonaws.com 443');
    const parent = await readFile(path.join(directory, 'units', 'nitro-infer-parent.service'), 'utf8');
    expect(parent).toContain('parent --config');
    const config = await readFile(path.join(directory, 'etc-ni', 'parent.yaml'), 'utf8');
    expect(config).toContain('mode: production');
    expect(config).toContain('vsock:16:5000');
    // The config it writes is one `nitro-infer parent` accepts.
    expect(resolveConfig(ParentConfigSchema, parseYaml(config), {}).enclave.address).toBe('vsock:16:5000');
    expect(await readFile(path.join(directory, 'systemctl.log'), 'utf8')).toContain(
      'enable --now --no-block nitro-infer-kms-proxy.service nitro-infer-enclave.service nitro-infer-parent.service',
    );
    // The enclave is supervised: restarted by run-enclave.sh, and the supervisor by systemd.
    const enclave = await readFile(path.join(directory, 'units', 'nitro-infer-enclave.service'), 'utf8');
    expect(enclave).toContain(
      'run-enclave.sh --eif /opt/nitro-infer/build/enclave.eif --cpus 2 --cid 16 --supervise',
    );
    expect(enclave).toContain('Restart=always');
    // Requires= would restart this unit whenever run-enclave.sh restarts the allocator.
    expect(enclave).toContain('Wants=nitro-enclaves-allocator.service');
    expect(enclave).not.toContain('Requires=');
    expect(parent).toContain('Wants=network-online.target nitro-infer-enclave.service');
  });

  it('install-parent with a cluster group and a models list: the cluster listener and the models unit', async () => {
    await rm(path.join(directory, 'etc-ni'), { recursive: true, force: true });
    await run(
      'bash',
      [
        path.join(PROJECT_ROOT, 'scripts/deploy/install-parent.sh'),
        '--region',
        'eu-central-1',
        '--tokens-secret',
        'NitroInfer-tokens',
        '--cluster-group',
        'NitroInfer-instances',
        '--models-list',
        's3://bucket/release/models.txt',
        '--no-start',
      ],
      { env: env() },
    );
    const config = resolveConfig(
      ParentConfigSchema,
      parseYaml(await readFile(path.join(directory, 'etc-ni', 'parent.yaml'), 'utf8')),
      {},
    );
    expect(config.admin.tokensSecretId).toBe('NitroInfer-tokens');
    expect(config.cluster?.autoScalingGroup).toBe('NitroInfer-instances');
    const models = await readFile(path.join(directory, 'units', 'nitro-infer-models.service'), 'utf8');
    expect(models).toContain(
      'load-models.sh --list s3://bucket/release/models.txt --token-secret NitroInfer-tokens',
    );
    expect(models).toContain('BindsTo=nitro-infer-parent.service');
    expect(models).toContain('WantedBy=nitro-infer-parent.service');
    const bad = await run(
      'bash',
      [
        path.join(PROJECT_ROOT, 'scripts/deploy/install-parent.sh'),
        '--region',
        'eu-central-1',
        '--cluster-group',
        'a b',
      ],
      {
        env: env(),
      },
    ).catch((error: { code: number }) => error);
    expect((bad as { code: number }).code).toBe(2);
  });

  it('load-models loads each listed model into the local parent, retrying while it answers 503', async () => {
    const list = path.join(directory, 'models.txt');
    await writeFile(
      list,
      '# pinned versions\nresnet s3://b/models/resnet.sealed?versionId=v1\n\nbert s3://b/m/bert.sealed?versionId=v7\n',
    );
    const token = path.join(directory, 'token');
    await writeFile(token, 'tok');
    // A stand-in install: its bin/nitro-infer.js fails once (the link not yet up), then succeeds.
    const install = path.join(directory, 'install');
    await run('mkdir', ['-p', path.join(install, 'bin')]);
    await writeFile(
      path.join(install, 'bin', 'nitro-infer.js'),
      `const fs = require('node:fs');
const log = ${JSON.stringify(path.join(directory, 'loads.log'))};
const tries = fs.existsSync(log) ? fs.readFileSync(log, 'utf8').split('\\n').length : 0;
fs.appendFileSync(log, process.argv.slice(2).join(' ') + '\\n');
if (tries === 0) { console.error('503 ERR_LINK_UNAVAILABLE'); process.exit(1); }`,
    );
    await writeFile(path.join(install, 'package.json'), '{"type": "commonjs"}');
    const { stdout } = await run(
      'bash',
      [
        path.join(PROJECT_ROOT, 'scripts/deploy/load-models.sh'),
        '--list',
        list,
        '--token-file',
        token,
        '--install-dir',
        install,
        '--retry-seconds',
        '0',
      ],
      { env: env() },
    );
    expect(stdout).toContain('loaded 2 model(s)');
    const loads = (await readFile(path.join(directory, 'loads.log'), 'utf8')).trim().split('\n');
    expect(loads).toEqual([
      `models load resnet s3://b/models/resnet.sealed?versionId=v1 --endpoint http://127.0.0.1:8080 --token-file ${token}`,
      `models load resnet s3://b/models/resnet.sealed?versionId=v1 --endpoint http://127.0.0.1:8080 --token-file ${token}`,
      `models load bert s3://b/m/bert.sealed?versionId=v7 --endpoint http://127.0.0.1:8080 --token-file ${token}`,
    ]);
  });
});
