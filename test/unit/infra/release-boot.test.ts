/**
 * The release artifact booted as an instance boots it: `npm run release`'s archive is put in a
 * stand-in bucket, and the stack's own user data lines (bootCommands) run with stand-in `dnf`,
 * `aws`, `nitro-cli` and `systemctl` on PATH. The stand-in systemctl starts each unit the scripts
 * installed by running its ExecStart line, so the parent that answers below is the one unpacked
 * from the archive with its own node_modules. The release is uploaded only after the boot began:
 * the instance waits for it. Only the parent's config is provided beforehand (the production one
 * needs vsock and Secrets Manager; build-and-deploy-scripts.test.ts checks what install-parent writes).
 */
import { execFileSync, spawn } from 'node:child_process';
import { chmod, copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bootCommands } from '../../../infra/stack.ts';
import { buildRelease } from '../../../scripts/release.ts';
import { PROJECT_ROOT } from '../../helpers/fixtures.ts';

let directory = '';
let port = 0;
let boot: { status: number | null; output: string } = { status: null, output: '' };
const BUCKET = 'stand-in-bucket';

async function standIn(name: string, body: string): Promise<void> {
  const file = path.join(directory, 'bin', name);
  await writeFile(file, `#!/usr/bin/env bash\necho "$*" >> "${directory}/${name}.log"\n${body}\n`);
  await chmod(file, 0o755);
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return typeof address === 'object' && address !== null ? address.port : 0;
}

async function until(check: () => Promise<boolean>, what: string, tries = 200): Promise<void> {
  for (let i = 0; i < tries; i += 1) {
    if (await check().catch(() => false)) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`timed out waiting for ${what}`);
}

const exists = (file: string) =>
  readFile(file).then(
    () => true,
    () => false,
  );

beforeAll(async () => {
  directory = await mkdtemp(path.join(os.tmpdir(), 'ni-release-'));
  const bucket = path.join(directory, 'bucket');
  await mkdir(path.join(directory, 'bin'), { recursive: true });
  await mkdir(path.join(bucket, 'release'), { recursive: true });
  await standIn('dnf', '');
  // s3 cp s3://bucket/key <file>, from the bucket folder; a missing key fails as the CLI does.
  await standIn(
    'aws',
    `case "$1 $2" in
  "s3 cp") for a in "$@"; do case "$a" in s3://*) key="\${a#s3://*/}";; esac; done
    dst="\${@: -1}"; [ -f "${bucket}/$key" ] || { echo "fatal error: (404) Not Found" >&2; exit 1; }
    mkdir -p "$(dirname "$dst")"; cp "${bucket}/$key" "$dst" ;;
  "secretsmanager get-secret-value") echo "admin-token-from-secrets-manager-0123" ;;
esac`,
  );
  await standIn(
    'nitro-cli',
    `case "$1" in
  run-enclave) echo '[{"EnclaveName":"nitro-infer","EnclaveCID":16,"State":"RUNNING"}]' > "${directory}/enclave.state" ;;
  describe-enclaves) cat "${directory}/enclave.state" 2>/dev/null || echo '[]' ;;
  terminate-enclave) rm -f "${directory}/enclave.state" ;;
esac`,
  );
  // enable --now <unit…>: run each installed unit's ExecStart in its own process group.
  await standIn(
    'systemctl',
    `if [ "$1" = enable ] && [ "$2" = --now ]; then shift 2
  for unit in "$@"; do file="$SYSTEMD_DIR/$unit"; [ -f "$file" ] || continue # also skips --no-block
    command=$(sed -n 's/^ExecStart=//p' "$file")
    setsid bash -c "exec $command" > "${directory}/$unit.out" 2>&1 < /dev/null &
    echo $! >> "${directory}/pids"
  done
fi`,
  );
  port = await freePort();
  const etc = path.join(directory, 'etc-ni');
  await mkdir(etc, { recursive: true });
  await writeFile(path.join(directory, 'tokens.json'), '{"tokens": ["a-local-admin-token-0123456789"]}');
  await writeFile(
    path.join(etc, 'parent.yaml'),
    `mode: simulation\nhttp: {host: 127.0.0.1, port: ${port}}\n` +
      `enclave: {address: "unix:${directory}/enclave.sock"}\n` +
      `admin: {tokensFile: ${directory}/tokens.json}\naws: {region: eu-west-1}\n`,
  );
  await writeFile(path.join(bucket, 'release', 'models.txt'), '# no model sealed yet\n');

  const installDir = path.join(directory, 'opt', 'nitro-infer');
  const script = bootCommands({
    bucket: BUCKET,
    releasePrefix: 'release/',
    region: 'eu-west-1',
    enclaveCpus: 2,
    tokensSecret: 'NitroInfer-admin-tokens',
    groupName: 'NitroInfer-instances',
    installDir,
    retrySeconds: 1,
  }).join('\n');
  await mkdir(path.dirname(installDir), { recursive: true });
  // The instance runs the archive's compiled dist/, never the sources under test (vitest.config.ts
  // sets NITRO_INFER_FROM_SOURCE for the other tests' children; the archive has no tsx).
  const inherited = { ...process.env };
  delete inherited.NITRO_INFER_FROM_SOURCE;
  const child = spawn('bash', ['-c', script], {
    env: {
      ...inherited,
      PATH: `${path.join(directory, 'bin')}${path.delimiter}${process.env.PATH}`,
      NITRO_ENCLAVES_ETC: path.join(directory, 'etc-ne'),
      NITRO_INFER_ETC: etc,
      SYSTEMD_DIR: path.join(directory, 'units'),
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout.on('data', (chunk: Buffer) => (boot.output += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (boot.output += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('close', resolve));

  // The instance is up before the release is: it waits, then takes it. The release ships dist/,
  // built here as `npm run release` builds it.
  execFileSync(process.execPath, [path.join(PROJECT_ROOT, 'scripts', 'build.mjs'), '--server'], {
    cwd: PROJECT_ROOT,
  });
  const release = await buildRelease({
    root: PROJECT_ROOT,
    output: path.join(directory, 'out', 'nitro-infer.tgz'),
    level: 1,
  });
  await until(async () => boot.output.includes('waiting for s3://'), 'the boot to wait for the release');
  await copyFile(release.file, path.join(bucket, 'release', 'nitro-infer.tgz'));
  await writeFile(path.join(bucket, 'release', 'enclave.eif'), Buffer.alloc(4096, 1));
  boot = { ...boot, status: await exited };
}, 180_000);

afterAll(async () => {
  const pids = await readFile(path.join(directory, 'pids'), 'utf8').catch(() => '');
  for (const pid of pids.split('\n').filter((line) => /^\d+$/.test(line))) {
    try {
      process.kill(-Number(pid), 'SIGTERM');
    } catch {
      // Already gone (the models unit exits by itself).
    }
  }
  await new Promise((resolve) => setTimeout(resolve, 500));
  await rm(directory, { recursive: true, force: true });
});

describe('the release artifact, booted as the user data boots it', () => {
  it('the boot waited for the release, unpacked it and installed every unit', async () => {
    expect(boot.output).toContain(`waiting for s3://${BUCKET}/release/nitro-infer.tgz`);
    expect(boot.status, boot.output).toBe(0);
    const units = path.join(directory, 'units');
    for (const unit of ['kms-proxy', 'enclave', 'parent', 'models']) {
      expect(await exists(path.join(units, `nitro-infer-${unit}.service`))).toBe(true);
    }
    const enclaveUnit = await readFile(path.join(units, 'nitro-infer-enclave.service'), 'utf8');
    expect(enclaveUnit).toContain('Restart=always');
    expect(enclaveUnit).toMatch(
      /run-enclave\.sh --eif \S+\/build\/enclave\.eif --cpus 2 --cid 16 --supervise/,
    );
    expect(await readFile(path.join(directory, 'systemctl.log'), 'utf8')).toContain(
      'enable --now --no-block nitro-infer-kms-proxy.service nitro-infer-enclave.service nitro-infer-parent.service nitro-infer-models.service',
    );
  });

  it('the parent from the archive (its own node_modules) serves; not ready without an enclave', async () => {
    const base = `http://127.0.0.1:${port}`;
    await until(async () => (await fetch(`${base}/v2/health/live`)).status === 200, 'the parent', 300);
    expect((await fetch(`${base}/v2/health/ready`)).status).toBe(503);
    const unit = await readFile(path.join(directory, 'units', 'nitro-infer-parent.service'), 'utf8');
    expect(unit).toContain(
      `${path.join(directory, 'opt', 'nitro-infer')}/bin/nitro-infer.js parent --config`,
    );
  });

  it('the enclave unit started the enclave by name and CID; the models unit read the list with the secret token', async () => {
    await until(() => exists(path.join(directory, 'enclave.state')), 'the enclave');
    const nitro = await readFile(path.join(directory, 'nitro-cli.log'), 'utf8');
    expect(nitro).toMatch(
      /run-enclave --eif-path \S+enclave\.eif --cpu-count 2 --memory 2048 --enclave-cid 16 --enclave-name nitro-infer/,
    );
    await until(
      async () =>
        (await readFile(path.join(directory, 'nitro-infer-models.service.out'), 'utf8')).includes('loaded 0'),
      'the models unit',
    );
    const aws = await readFile(path.join(directory, 'aws.log'), 'utf8');
    expect(aws).toContain(`s3 cp --only-show-errors s3://${BUCKET}/release/models.txt`);
    expect(aws).toContain('secretsmanager get-secret-value --secret-id NitroInfer-admin-tokens');
  });
});
