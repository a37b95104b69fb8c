/**
 * Boots the production image's `/app` under a real kernel (DESIGN.md 8, ../shared/vm/README.md):
 * QEMU (TCG, q35, `virtio-nsm-pci`) with Debian's 6.12 kernel and an initramfs made per run from
 * this checkout — the production bundle and native packages exactly as the image lays them out
 * (test/helpers/enclave-image.ts), the official Node binary at the image's path `/nodejs/bin/node`
 * with the glibc libraries it and the native packages link, and a busybox init that mounts, loads
 * the modules, runs each step as the image's user (65532) and powers off.
 *
 * Everything booted comes from the cache `test/vm/prepare.sh` fills; `vmPrerequisites()` says what
 * is missing instead of building it here (a test must not spend 15 minutes compiling QEMU).
 */
import { execFileSync, spawn } from 'node:child_process';
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  realpathSync,
} from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { PROJECT_ROOT } from '../helpers/fixtures.ts';
import { stageImageApp } from '../helpers/enclave-image.ts';

/** Where prepare.sh caches what the guests boot. */
export const VM_CACHE = process.env.NITRO_INFER_VM_CACHE ?? '/var/cache/nitro-infer-vm';

/** The command that fills the cache. */
export const PREPARE_COMMAND = 'bash test/vm/prepare.sh';

const VERSIONS = readFileSync(path.join(PROJECT_ROOT, 'test/vm/versions.sh'), 'utf8');
const setting = (name: string) => new RegExp(`^${name}="?([^"\\n]+)"?$`, 'm').exec(VERSIONS)?.[1] ?? '';
/** The image's Node version (versions.sh), which the guest runs. */
export const NODE_VERSION = setting('NODE_VERSION');
const KERNEL_MODULES = setting('KERNEL_MODULES').split(/\s+/);

/** The cached pieces, or why they cannot be used. */
export interface VmPrerequisites {
  readonly qemu: string;
  readonly kernel: string;
  readonly busybox: string;
  readonly node: string;
  /** e.g. `qemu 1:10.0.2+ds-…, linux-image-6.12.… 6.12.…` */
  readonly versions: string;
}

export function vmPrerequisites(): VmPrerequisites | { readonly missing: string } {
  const files = {
    qemu: path.join(VM_CACHE, 'qemu/bin/qemu-system-x86_64'),
    kernel: path.join(VM_CACHE, 'kernel/vmlinuz'),
    busybox: path.join(VM_CACHE, 'busybox/busybox'),
    node: path.join(VM_CACHE, `node-${NODE_VERSION}/bin/node`),
  };
  const stamps = [path.join(VM_CACHE, 'qemu/VERSION'), path.join(VM_CACHE, 'kernel/VERSION')];
  // A cache made before a module joined KERNEL_MODULES lacks it: prepare.sh then refetches the kernel.
  const modules = KERNEL_MODULES.map((module) => path.join(VM_CACHE, 'kernel/modules', `${module}.ko`));
  const firmware = [path.join(VM_CACHE, 'qemu-roms/linuxboot_dma.bin'), '/usr/share/seabios/bios-256k.bin'];
  const absent = [...Object.values(files), ...stamps, ...modules, ...firmware].filter(
    (file) => !existsSync(file),
  );
  if (absent.length > 0) return { missing: `${absent.join(', ')} (prepare with: ${PREPARE_COMMAND})` };
  const versions = stamps.map((file) => readFileSync(file, 'utf8').trim());
  return { ...files, versions: `qemu ${versions[0]}, ${versions[1]}` };
}

/** One command the guest's init runs, as uid/gid 65532 in `/app` unless `root`. */
export interface GuestStep {
  readonly name: string;
  /** argv; `/nodejs/bin/node` is the image's Node. */
  readonly command: readonly string[];
  readonly root?: boolean;
}

/** What one boot printed, per step. */
export interface GuestRun {
  readonly console: string;
  readonly steps: ReadonlyMap<string, { readonly exitCode: number; readonly lines: readonly string[] }>;
  readonly modulesLoaded: boolean;
}

const MARK = 'NITRO_VM';

/** Shared libraries `ldd` resolves for the given ELF files, as absolute host paths. */
function sharedLibraries(files: readonly string[]): string[] {
  const found = new Set<string>();
  for (const file of files) {
    const output = execFileSync('ldd', [file], { encoding: 'utf8' });
    for (const match of output.matchAll(/(?:=>\s*)?(\/\S+)\s+\(0x/g)) found.add(match[1]!);
  }
  return [...found].sort();
}

function nativeFiles(directory: string): string[] {
  return readdirSync(directory, { recursive: true, encoding: 'utf8' })
    .filter((name) => /\.node$|\.so(\.\d+)*$/.test(name))
    .map((name) => path.join(directory, name));
}

/** Single-quoted for the init's shell. */
export const shellQuote = (word: string) => `'${word.replace(/'/g, `'\\''`)}'`;

/** The init's first lines: busybox applets, the pseudo file systems, the modules, then `cd /app`. */
export function initPrologue(): string[] {
  return [
    '#!/bin/busybox sh',
    '/bin/busybox --install -s /bin',
    'mkdir -p /proc /sys /dev /tmp',
    'mount -t proc proc /proc && mount -t sysfs sysfs /sys && mount -t devtmpfs devtmpfs /dev && mount -t tmpfs tmpfs /tmp',
    'chmod 1777 /tmp',
    'loaded=1',
    ...KERNEL_MODULES.map((module) => `insmod /lib/modules/${module}.ko || loaded=0`),
    `echo "${MARK} modules $loaded"`,
    'cd /app',
  ];
}

function initScript(steps: readonly GuestStep[]): string {
  const quote = shellQuote;
  const lines = initPrologue();
  for (const step of steps) {
    const argv = step.command.map(quote).join(' ');
    // busybox has no setpriv --reuid; su from root needs no password, and /etc/passwd names
    // 65532 `nonroot` as distroless does.
    const run = step.root ? argv : `su -s /bin/sh nonroot -c ${quote(`exec ${argv}`)}`;
    lines.push(
      `echo "${MARK} begin ${step.name}"`,
      `NODE_ENV=production HOME=/tmp ${run} </dev/null 2>&1`,
      `echo "${MARK} end ${step.name} $?"`,
    );
  }
  lines.push(`echo "${MARK} done"`, 'poweroff -f');
  return `${lines.join('\n')}\n`;
}

/**
 * Builds the initramfs with `init` in `directory`; `files` maps guest paths to host files (copied
 * read-only). Returns the cpio's path.
 */
export async function buildInitramfs(
  prerequisites: VmPrerequisites,
  directory: string,
  init: string,
  extraEntries: Record<string, string>,
  files: Readonly<Record<string, string>> = {},
): Promise<string> {
  const root = path.join(directory, 'root');
  await stageImageApp(path.join(root, 'app'), extraEntries);
  const put = (source: string, target: string, mode = 0o755) => {
    mkdirSync(path.dirname(path.join(root, target)), { recursive: true });
    copyFileSync(realpathSync(source), path.join(root, target));
    chmodSync(path.join(root, target), mode);
  };
  put(prerequisites.busybox, 'bin/busybox');
  put(prerequisites.node, 'nodejs/bin/node');
  for (const library of sharedLibraries([prerequisites.node, ...nativeFiles(path.join(root, 'app'))])) {
    put(library, library);
  }
  for (const module of KERNEL_MODULES) {
    put(path.join(VM_CACHE, 'kernel/modules', `${module}.ko`), `lib/modules/${module}.ko`, 0o644);
  }
  mkdirSync(path.join(root, 'etc'), { recursive: true });
  await writeFile(
    path.join(root, 'etc/passwd'),
    'root:x:0:0:root:/root:/bin/sh\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n',
  );
  await writeFile(path.join(root, 'etc/group'), 'root:x:0:\nnonroot:x:65532:\n');
  for (const [target, source] of Object.entries(files)) put(source, target, 0o644);
  await writeFile(path.join(root, 'init'), init, { mode: 0o755 });
  const cpio = path.join(directory, 'initrd.cpio');
  // newc, every file owned by root; the image's files are root-owned and read-only to 65532 too.
  execFileSync(
    'sh',
    ['-c', `find . | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet > ${JSON.stringify(cpio)}`],
    {
      cwd: root,
    },
  );
  return cpio;
}

/**
 * QEMU's command line: TCG only (this machine kind's KVM, KVM-PVM, faults on a stock kernel, and
 * CI machines may have none), q35, the serial console on stdio, `devices` added as given, and
 * `netdev` (a `-netdev` value) behind a virtio-net NIC when given (no option ROM: `-kernel` boots
 * without PXE, and the cache holds only the ROMs `-kernel` needs).
 */
export function qemuArguments(
  prerequisites: VmPrerequisites,
  initrd: string,
  options: { readonly devices: readonly string[]; readonly memoryMib?: number; readonly netdev?: string },
): string[] {
  return [
    ...['-L', path.join(VM_CACHE, 'qemu-roms'), '-L', '/usr/share/seabios'],
    ...['-accel', 'tcg', '-M', 'q35', '-m', String(options.memoryMib ?? 2048), '-smp', '2'],
    ...['-display', 'none', '-vga', 'none', '-nodefaults', '-no-reboot'],
    ...['-serial', 'stdio', '-monitor', 'none'],
    ...['-kernel', prerequisites.kernel, '-initrd', initrd],
    ...['-append', 'console=ttyS0 panic=-1 quiet'],
    ...options.devices.flatMap((device) => ['-device', device]),
    ...(options.netdev === undefined
      ? []
      : ['-netdev', `${options.netdev},id=net0`, '-device', 'virtio-net-pci,netdev=net0,romfile=']),
  ];
}

/** Boots one guest that runs `steps` in order, then powers off. */
export async function bootGuest(options: {
  readonly steps: readonly GuestStep[];
  readonly extraEntries?: Record<string, string>;
  readonly timeoutMs: number;
  readonly devices?: readonly string[];
}): Promise<GuestRun> {
  const prerequisites = vmPrerequisites();
  if ('missing' in prerequisites) throw new Error(`VM prerequisites missing: ${prerequisites.missing}`);
  const directory = await mkdtemp(path.join(os.tmpdir(), 'nitro-infer-vm-'));
  try {
    const initrd = await buildInitramfs(
      prerequisites,
      directory,
      initScript(options.steps),
      options.extraEntries ?? {},
    );
    const args = qemuArguments(prerequisites, initrd, { devices: options.devices ?? [] });
    const console = await new Promise<string>((resolve, reject) => {
      const child = spawn(prerequisites.qemu, args, { stdio: ['ignore', 'pipe', 'pipe'] });
      let output = '';
      child.stdout.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
      child.stderr.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        reject(
          new Error(
            `the guest did not power off in ${options.timeoutMs} ms; console:\n${output.slice(-4000)}`,
          ),
        );
      }, options.timeoutMs);
      child.once('error', reject);
      child.once('exit', () => {
        clearTimeout(timer);
        resolve(output.replace(/\r/g, ''));
      });
    });
    return parseConsole(console);
  } finally {
    await rm(directory, { recursive: true, force: true });
  }
}

function parseConsole(console: string): GuestRun {
  const steps = new Map<string, { exitCode: number; lines: string[] }>();
  let current: string[] | undefined;
  let modulesLoaded = false;
  for (const line of console.split('\n')) {
    const mark = new RegExp(`^${MARK} (\\S+)(?: (\\S+))?(?: (\\d+))?$`).exec(line.trim());
    if (mark === null) {
      current?.push(line);
      continue;
    }
    if (mark[1] === 'modules') modulesLoaded = mark[2] === '1';
    if (mark[1] === 'begin') current = [];
    if (mark[1] === 'end' && current !== undefined) {
      steps.set(mark[2]!, { exitCode: Number(mark[3]), lines: current });
      current = undefined;
    }
  }
  if (!console.includes(`${MARK} done`))
    throw new Error(`the guest's init did not finish; console:\n${console.slice(-4000)}`);
  return { console, steps, modulesLoaded };
}
