/**
 * Node 20.20's `generateKeyPairSync('x25519')` followed by a JWK export deadlocks the process
 * within seconds of a loop (a mutex in KeyGenJob's destructor, taken again by GC inside the JWK
 * export). Every OHTTP request and response makes an ephemeral X25519 key, so a client or enclave
 * using JWK would hang under load. node-primitives.ts moves raw keys as DER; this runs the KEM's
 * ephemeral key generation (what every encapsulation starts with) many times, in a child process that must finish.
 */
import { execFile } from 'node:child_process';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { PROJECT_ROOT } from '../../../helpers/fixtures.ts';

const ITERATIONS = 250_000;

const SCRIPT = `
const { NodeDhkemX25519HkdfSha256 } = await import(${JSON.stringify(
  path.join(PROJECT_ROOT, 'shared', 'ohttp', 'node-primitives.ts'),
)});
const kem = new NodeDhkemX25519HkdfSha256();
let done = 0;
for (; done < ${ITERATIONS}; done++) await kem.generateKeyPair();
process.stdout.write(String(done));
`;

describe('X25519 ephemeral keys (node-primitives.ts)', () => {
  it(`makes ${ITERATIONS} ephemeral key pairs without hanging the process`, async () => {
    const result = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
      const child = execFile(
        process.execPath,
        ['--import', 'tsx', '--input-type=module', '-e', SCRIPT],
        { cwd: PROJECT_ROOT, timeout: 100_000, killSignal: 'SIGKILL' },
        (error, stdout, stderr) =>
          resolve({ code: error === null ? 0 : (child.exitCode ?? null), stdout, stderr }),
      );
    });
    expect(result.stderr).toBe('');
    expect(result.stdout).toBe(String(ITERATIONS));
    expect(result.code).toBe(0);
  }, 120_000);
});
