/**
 * Children of the local stack must not outlive it. npm runs a script as `sh -c …` and passes
 * neither SIGTERM nor SIGKILL on to it (measured with npm 11: SIGTERM to `npm start` left the
 * script running, re-parented). Two mechanisms, both Linux:
 * - the parent-death signal (prctl PR_SET_PDEATHSIG): the kernel sends SIGTERM to this process the
 *   moment its parent exits, however it exits;
 * - when the parent is only the shell npm or npx put in between, that shell outlives npm; then the
 *   process that started the shell is watched too (a liveness check once a second).
 */
import { readFileSync } from 'node:fs';
import koffi from 'koffi';

const PR_SET_PDEATHSIG = 1;
const SIGTERM = 15;
const SHELLS = new Set(['sh', 'dash', 'bash', 'zsh']);
const WATCH_INTERVAL_MS = 1000;

/**
 * Arranges for SIGTERM to this process when whoever started it exits. Returns false where that is
 * not available (not Linux); the caller then relies on the signals it receives.
 */
export function exitWhenParentExits(): boolean {
  if (process.platform !== 'linux') return false;
  const parent = process.ppid;
  const prctl = koffi
    .load('libc.so.6')
    .func(
      'int prctl(int option, unsigned long arg2, unsigned long arg3, unsigned long arg4, unsigned long arg5)',
    );
  if (prctl(PR_SET_PDEATHSIG, SIGTERM, 0, 0, 0) !== 0) return false;
  // The parent may have gone between our start and the call: then no signal will ever come.
  if (process.ppid !== parent || parent === 1) {
    process.kill(process.pid, 'SIGTERM');
    return true;
  }
  const starter = SHELLS.has(commandName(parent) ?? '') ? parentOf(parent) : undefined;
  if (starter !== undefined && starter > 1) {
    const timer = setInterval(() => {
      if (!isAlive(starter)) {
        clearInterval(timer);
        process.kill(process.pid, 'SIGTERM');
      }
    }, WATCH_INTERVAL_MS);
    timer.unref();
  }
  return true;
}

function commandName(pid: number): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return undefined;
  }
}

function parentOf(pid: number): number | undefined {
  try {
    // /proc/<pid>/stat: "pid (comm) state ppid …"; comm may hold spaces, so read after the last ')'.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const ppid = Number.parseInt(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1] ?? '', 10);
    return Number.isSafeInteger(ppid) ? ppid : undefined;
  } catch {
    return undefined;
  }
}

/** True while process `pid` exists (EPERM: it exists but belongs to someone else). */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
