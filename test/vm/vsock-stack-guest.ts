/**
 * What the vsock stack test puts in its guest and how the guest's init runs it: the parent and
 * the simulation launcher's enclave (`nitro-infer enclave`, `nitro-infer parent`: scripts/main.ts
 * bundled as `cli.mjs` with the production entry's esbuild settings, beside it in the image's
 * `/app`), both as the image user 65532, each in its own job whose output the console carries
 * prefixed (`NITRO_VM parent …`, `NITRO_VM enclave …`). The enclave runs in a fresh network
 * namespace (`unshare -n`), as a real enclave has no network: AF_VSOCK is all it can reach. The
 * guest gets QEMU's user-mode network (10.0.2.15, gateway 10.0.2.2 = the host's loopback) for
 * the parent's HTTP port forward and its KMS forwarder's target.
 */
import { readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { ENCLAVE_CODE_BUNDLE } from '../../sim/code-measurement.ts';
import { PROJECT_ROOT } from '../helpers/fixtures.ts';
import { shellQuote } from './guest.ts';

/** Where the measured sources, configs and artifacts sit in the guest. */
export const GUEST_DIRECTORY = '/vm';
/** The parent's HTTP port inside the guest (the host forwards a free loopback port to it). */
export const GUEST_HTTP_PORT = 8080;

/**
 * `ENCLAVE_CODE_BUNDLE` as guest files under /vm/src: the simulated NSM measures PCR0-2 from them
 * (sim/code-measurement.ts), so the guest's enclave reports the PCRs the host's key policy pins.
 */
export function measuredSourceFiles(): Record<string, string> {
  const files: Record<string, string> = {};
  for (const entry of ENCLAVE_CODE_BUNDLE) {
    const absolute = path.join(PROJECT_ROOT, entry);
    const names = statSync(absolute).isFile()
      ? ['']
      : readdirSync(absolute, { recursive: true, withFileTypes: true })
          .filter((file) => file.isFile())
          .map((file) => path.relative(absolute, path.join(file.parentPath, file.name)));
    for (const name of names) {
      files[path.posix.join(GUEST_DIRECTORY, 'src', entry, name.split(path.sep).join('/'))] = path.join(
        absolute,
        name,
      );
    }
  }
  return files;
}

const NODE = '/nodejs/bin/node';
const CLI = '/app/dist/enclave/cli.mjs';

/** The init's lines after the prologue: network, parent, enclave, then the command loop. */
export function stackScript(parentEnvironment: Readonly<Record<string, string>>): string[] {
  const asImageUser = (verb: string) =>
    `su -s /bin/sh nonroot -c ${shellQuote(`exec ${NODE} ${CLI} ${verb} --config ${GUEST_DIRECTORY}/${verb}.json`)}`;
  const environment = Object.entries({ NODE_ENV: 'production', HOME: '/tmp', ORT_DISABLE_TELEMETRY: '1' })
    .map(([name, value]) => `${name}=${shellQuote(value)}`)
    .join(' ');
  const parentOnly = Object.entries(parentEnvironment)
    .map(([name, value]) => `${name}=${shellQuote(value)}`)
    .join(' ');
  return [
    // The console carries commands from the host: no echo of them into the log.
    'stty -echo 2>/dev/null',
    'ip link set lo up',
    'if ip link set eth0 up && ip addr add 10.0.2.15/24 dev eth0 && ip route add default via 10.0.2.2; then echo "NITRO_VM net 1"; else echo "NITRO_VM net 0"; fi',
    'echo "NITRO_VM clock $(date +%s)"',
    'prefix() { while IFS= read -r line; do echo "NITRO_VM $1 $line"; done; }',
    'mkfifo /tmp/parent.out /tmp/enclave.out',
    'prefix parent </tmp/parent.out &',
    `env ${environment} ${parentOnly} ${asImageUser('parent')} </dev/null >/tmp/parent.out 2>&1 &`,
    // unshare and su exec, so $! is the enclave's node process itself.
    'start_enclave() {',
    '  prefix enclave </tmp/enclave.out &',
    `  env ${environment} unshare -n ${asImageUser('enclave')} </dev/null >/tmp/enclave.out 2>&1 &`,
    '  enclave=$!',
    '  echo "NITRO_VM enclave-started $enclave"',
    '}',
    'start_enclave',
    'while read -r command; do',
    '  case "$command" in',
    '    kill-enclave) kill -9 "$enclave"; wait "$enclave"; echo "NITRO_VM enclave-exit $?" ;;',
    '    start-enclave) start_enclave ;;',
    // The enclave's network namespace and the init's: they must differ (unshare -n took effect).
    '    netns) echo "NITRO_VM netns $(readlink /proc/$enclave/ns/net) $(readlink /proc/$$/ns/net)" ;;',
    '    poweroff) break ;;',
    '  esac',
    'done',
    'echo "NITRO_VM done"',
    'poweroff -f',
  ];
}
