/**
 * The `nitro-infer` command line. Each verb lives in its own module and returns its output, so
 * this file only dispatches, prints and sets the exit status. Errors are one line and a non-zero
 * exit: 1 when the answer is "no" (an invalid document), 2 for wrong arguments or input.
 */
import { isNitroInferError } from '../shared/errors.ts';
import { ATTEST_VERIFY_HELP, attestVerify } from './attest-verify.ts';
import type { CommandOutput } from './cli-output.ts';
import { SIM_HELP, sim } from './sim-command.ts';
import { simKms } from './sim-kms-command.ts';
import { enclaveCommand, parentCommand } from './serve-commands.ts';

/** Resolves on the first SIGINT or SIGTERM, for verbs that serve until stopped. */
function interrupted(): Promise<void> {
  return new Promise((resolve) => {
    process.once('SIGINT', () => resolve());
    process.once('SIGTERM', () => resolve());
  });
}

const HELP = `Usage: nitro-infer <command> [options]

Commands:
  attest verify <file|->   verify an attestation document offline
  sim                      run the local simulation
  sim kms                  run the KMS simulator alone
  enclave                  run the enclave service (--config file)
  parent                   run the parent HTTP proxy (--config file)

Run \`nitro-infer <command> --help\` for a command's options.`;

/** Runs the command line with `args` (without the program name). */
export async function run(args: readonly string[], stdin: () => Promise<Buffer>): Promise<CommandOutput> {
  const [verb, ...rest] = args;
  try {
    switch (verb) {
      case 'attest':
        if (rest[0] === 'verify') return await attestVerify(rest.slice(1), stdin);
        return rest[0] === '--help' || rest[0] === '-h'
          ? { exitCode: 0, stdout: ATTEST_VERIFY_HELP }
          : {
              exitCode: 2,
              stderr: `error: ERR_CLI_USAGE: unknown attest command; try \`nitro-infer attest verify --help\``,
            };
      case 'enclave':
      case 'parent': {
        const serve = verb === 'enclave' ? enclaveCommand : parentCommand;
        return { exitCode: await serve(rest, (line) => process.stdout.write(`${line}\n`), interrupted()) };
      }
      case 'sim':
        if (rest[0] === 'kms') {
          const exitCode = await simKms(
            rest.slice(1),
            (line) => process.stdout.write(`${line}\n`),
            interrupted(),
          );
          return { exitCode };
        }
        return await sim(rest);
      case undefined:
      case '--help':
      case '-h':
      case 'help':
        return { exitCode: verb === undefined ? 2 : 0, stdout: HELP };
      default:
        return {
          exitCode: 2,
          stderr: `error: ERR_CLI_USAGE: unknown command ${JSON.stringify(verb)}\n\n${HELP}`,
        };
    }
  } catch (error) {
    if (isNitroInferError(error)) return { exitCode: 2, stderr: `error: ${error.code}: ${error.message}` };
    return {
      exitCode: 1,
      stderr: `error: ERR_INTERNAL: ${error instanceof Error ? error.message : String(error)}`,
    };
  }
}

export { HELP, SIM_HELP };
