/**
 * The `nitro-infer` command line. Each verb lives in its own module and returns its output, so
 * this file only dispatches, prints and sets the exit status. Errors are one line (one JSON object
 * with --json) and a non-zero exit: 1 when the answer is "no" (an invalid document), 2 for wrong
 * arguments or input, 3 when the endpoint cannot be reached, 4 on --timeout (EXIT_STATUS).
 */
import { CliError, isNitroInferError } from '../shared/errors.ts';
import type { CommandOutput } from './cli-output.ts';
import { SIM_HELP } from './sim-help.ts';

// Each verb's module is imported when that verb runs, not before: the CLI then loads only what the
// verb needs (the server verbs pull in Fastify, the AWS SDK and onnxruntime), which keeps
// `--help` and `attest verify` well under a second instead of paying for everything on every call.

/** Exit status after a second signal: 128 + SIGINT, as shells report an interrupted command. */
const FORCED_EXIT_STATUS = 130;

/**
 * Resolves on the first SIGINT, SIGTERM or SIGHUP (a closed terminal), for verbs that serve until
 * stopped; they then close everything they started. A second signal while closing exits at once.
 */
function interrupted(): Promise<void> {
  return new Promise((resolve) => {
    let received = false;
    const onSignal = () => {
      if (received) process.exit(FORCED_EXIT_STATUS);
      received = true;
      resolve();
    };
    for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(signal, onSignal);
  });
}

const HELP = `Usage: nitro-infer <command> [options]

Commands:
  attest                   verify the enclave behind an endpoint (fresh nonce, PCRs, bindings)
  attest verify <file|->   verify an attestation document offline
  infer                    one end-to-end encrypted V2 inference, receipt verified
  proxy                    a local Open Inference Protocol server that attests and encrypts
  receipts verify <file>   check a proxy's receipt log offline
  seal <model.onnx>        encrypt a model for the enclave (KMS + Encryption SDK), optionally to S3
  models list|load|unload  the parent's admin API
  build-eif                the enclave image and its PCRs (docker + nitro-cli)
  policy                   the KMS key policy that pins the build's PCRs
  sim                      the whole system on this machine (npm start)
  sim attest               one simulated attestation, written to files
  sim kms                  the KMS simulator alone
  enclave                  run the enclave service (--config file)
  parent                   run the parent HTTP proxy (--config file)

Run \`nitro-infer <command> --help\` for a command's options.`;

/** Runs the command line with `args` (without the program name). */
export async function run(args: readonly string[], stdin: () => Promise<Buffer>): Promise<CommandOutput> {
  const [verb, ...rest] = args;
  try {
    switch (verb) {
      case 'attest':
        if (rest[0] === 'verify') {
          const { attestVerify } = await import('./attest-verify.ts');
          return await attestVerify(rest.slice(1), stdin);
        }
        {
          const { ATTEST_REMOTE_HELP, attestRemote } = await import('./remote-commands.ts');
          if (rest.length === 0) return { exitCode: 2, stdout: ATTEST_REMOTE_HELP };
          return await attestRemote(rest);
        }
      case 'enclave':
      case 'parent': {
        const { enclaveCommand, parentCommand } = await import('./serve-commands.ts');
        const serve = verb === 'enclave' ? enclaveCommand : parentCommand;
        return { exitCode: await serve(rest, (line) => process.stdout.write(`${line}\n`), interrupted()) };
      }
      case 'sim':
        if (rest[0] === 'kms') {
          const { simKms } = await import('./sim-kms-command.ts');
          const exitCode = await simKms(
            rest.slice(1),
            (line) => process.stdout.write(`${line}\n`),
            interrupted(),
          );
          return { exitCode };
        }
        if (rest[0] === 'attest') {
          const { simAttest } = await import('./sim-command.ts');
          return await simAttest(rest.slice(1));
        }
        {
          const { simStack } = await import('./sim-stack-command.ts');
          return {
            exitCode: await simStack(rest, (line) => process.stdout.write(`${line}\n`), interrupted()),
          };
        }
      case 'infer':
        return await (await import('./remote-commands.ts')).infer(rest, stdin);
      case 'proxy': {
        // Loaded on demand: the other verbs need no HTTP server.
        const { proxyCommand } = await import('./proxy-command.ts');
        const print = (line: string) => process.stdout.write(`${line}\n`);
        return { exitCode: await proxyCommand(rest, print, interrupted()) };
      }
      case 'receipts':
        return await (await import('./receipts-command.ts')).receipts(rest);
      case 'seal':
        return await (await import('./seal-command.ts')).seal(rest);
      case 'models':
        return await (await import('./models-command.ts')).models(rest);
      case 'policy':
        return await (await import('./policy-command.ts')).policy(rest);
      case 'build-eif':
        return await (await import('./build-eif-command.ts')).buildEif(rest);
      case undefined:
      case '--help':
      case '-h':
      case 'help':
        return { exitCode: verb === undefined ? 2 : 0, stdout: HELP };
      default:
        if (args.includes('--json')) {
          return failureOutput(
            new CliError('ERR_CLI_USAGE', `unknown command ${JSON.stringify(verb)}`),
            true,
          );
        }
        return {
          exitCode: 2,
          stderr: `error: ERR_CLI_USAGE: unknown command ${JSON.stringify(verb)}\n\n${HELP}`,
        };
    }
  } catch (error) {
    return failureOutput(error, args.includes('--json'));
  }
}

/**
 * Exit statuses (docs/errors.md, "Exit status"): scripts tell a refusal from a network failure
 * without parsing messages.
 */
export const EXIT_STATUS = {
  ok: 0,
  /** The answer is "no": the enclave, a binding or a response did not verify; or an internal error. */
  refused: 1,
  /** Wrong arguments, unreadable input, an invalid policy; or the service refused the request. */
  usage: 2,
  /** The endpoint could not be reached (connection refused or reset, DNS, TLS). */
  unreachable: 3,
  /** The call did not finish within --timeout. */
  timeout: 4,
} as const;

/** The exit status for an error code. */
export function exitStatusFor(code: string): number {
  if (code === 'ERR_CLIENT_UNREACHABLE') return EXIT_STATUS.unreachable;
  if (code === 'ERR_CLIENT_TIMEOUT' || code === 'ERR_CLIENT_ABORTED') return EXIT_STATUS.timeout;
  if (code === 'ERR_CLIENT_OPTIONS_INVALID') return EXIT_STATUS.usage;
  if (code === 'ERR_INTERNAL') return EXIT_STATUS.refused;
  return /^ERR_(ATTESTATION|CLIENT|RECEIPT|DECRYPT)_?/.test(code) ? EXIT_STATUS.refused : EXIT_STATUS.usage;
}

/**
 * One line on stderr: `error: CODE: message`, or with --json one object
 * `{"error":{"code","message"}}`. Unknown errors are ERR_INTERNAL with their message only.
 */
export function failureOutput(error: unknown, json: boolean): CommandOutput {
  const code = isNitroInferError(error) ? error.code : 'ERR_INTERNAL';
  const message = error instanceof Error ? error.message : String(error);
  return {
    exitCode: exitStatusFor(code),
    stderr: json ? JSON.stringify({ error: { code, message } }) : `error: ${code}: ${message}`,
  };
}

export { HELP, SIM_HELP };
