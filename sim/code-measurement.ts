/**
 * Boot measurements of the simulated enclave, derived from its code the way an EIF's are derived
 * from its image: change one byte of enclave code and PCR0 changes, as it would on hardware.
 *
 * - PCR2 (application): the enclave's code bundle — `enclave/`, `shared/` and the lockfile that pins
 *   their dependencies.
 * - PCR1 (kernel and boot ramfs): the runtime the bundle runs on (the Node.js version).
 * - PCR0 (whole image): both of the above together.
 */
import { createHash } from 'node:crypto';
import { readFile, readdir } from 'node:fs/promises';
import path from 'node:path';
import { measure } from '../enclave/nsm/index.ts';

/** What the simulated enclave's code bundle consists of, relative to the project root. */
export const ENCLAVE_CODE_BUNDLE = ['enclave', 'shared', 'transport', 'package-lock.json'] as const;

/** The simulated boot PCRs. */
export interface BootMeasurements {
  readonly pcr0: Uint8Array;
  readonly pcr1: Uint8Array;
  readonly pcr2: Uint8Array;
}

/**
 * Measures the code bundle under `projectRoot`.
 * @param runtime identifies the kernel/runtime layer; defaults to this Node.js version.
 */
export async function measureEnclaveCodeBundle(
  projectRoot: string,
  runtime: string = `node ${process.version}`,
): Promise<BootMeasurements> {
  const application = createHash('sha384');
  for (const relative of await listBundle(projectRoot)) {
    const content = await readFile(path.join(projectRoot, relative));
    // Length-prefixed path and content, so no two different bundles hash the same.
    const header = Buffer.alloc(8);
    header.writeUInt32BE(Buffer.byteLength(relative), 0);
    header.writeUInt32BE(content.byteLength, 4);
    application.update(header).update(relative).update(content);
  }
  const applicationDigest = application.digest();
  const runtimeDigest = createHash('sha384').update(runtime).digest();
  return {
    pcr0: measure(Buffer.concat([runtimeDigest, applicationDigest])),
    pcr1: measure(runtimeDigest),
    pcr2: measure(applicationDigest),
  };
}

/** The bundle's files, sorted, with `/` separators. */
async function listBundle(projectRoot: string): Promise<string[]> {
  const files: string[] = [];
  for (const entry of ENCLAVE_CODE_BUNDLE) {
    const absolute = path.join(projectRoot, entry);
    const entries = await readdir(absolute, { recursive: true, withFileTypes: true }).catch(
      (error: unknown) => {
        if ((error as NodeJS.ErrnoException).code === 'ENOTDIR') return null;
        throw error;
      },
    );
    if (entries === null) {
      files.push(entry);
      continue;
    }
    for (const file of entries) {
      if (file.isFile())
        files.push(
          path.relative(projectRoot, path.join(file.parentPath, file.name)).split(path.sep).join('/'),
        );
    }
  }
  return files.sort();
}
