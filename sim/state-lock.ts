/**
 * One local stack per state directory. The stack writes its pid to `stack.pid` (created with
 * O_EXCL, so two starts cannot both win) and removes it when it stops. A pid file whose process is
 * gone is stale: it and the Unix sockets it left are removed, so a killed stack never blocks the
 * next start.
 */
import { readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { isAlive } from '../scripts/parent-death.ts';
import { CliError } from '../shared/errors.ts';

/** Sockets the stack listens on inside its state directory. */
export const STATE_SOCKETS = ['enclave.sock', 'kms.sock'] as const;

/** A held lock; `release` is idempotent. */
export interface StateLock {
  readonly file: string;
  release(): Promise<void>;
}

/**
 * Takes the state directory's lock.
 * @throws {CliError} `ERR_CLI_USAGE` when a live stack holds it.
 */
export async function acquireStateLock(directory: string): Promise<StateLock> {
  const file = path.join(directory, 'stack.pid');
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      await writeFile(file, `${process.pid}\n`, { flag: 'wx', mode: 0o600 });
      let released = false;
      return {
        file,
        release: async () => {
          if (released) return;
          released = true;
          await rm(file, { force: true });
        },
      };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
    const holder = Number.parseInt(await readFile(file, 'utf8').catch(() => ''), 10);
    if (Number.isSafeInteger(holder) && holder > 0 && holder !== process.pid && isAlive(holder)) {
      throw new CliError(
        'ERR_CLI_USAGE',
        `another local stack (pid ${holder}) is using the state directory ${directory}; stop it, or pass --state-dir for a second one`,
      );
    }
    // Stale: its process is gone. Nothing else can be using these sockets now.
    await rm(file, { force: true });
    for (const socket of STATE_SOCKETS) await rm(path.join(directory, socket), { force: true });
  }
  throw new CliError('ERR_CLI_USAGE', `cannot take the lock ${file}`);
}
