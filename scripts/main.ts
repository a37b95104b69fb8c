/** Process entry of the `nitro-infer` command line. */
import { buffer } from 'node:stream/consumers';
import { run } from './cli.ts';

const output = await run(process.argv.slice(2), () => buffer(process.stdin));
if (output.stdout !== undefined) process.stdout.write(`${output.stdout}\n`);
if (output.stderr !== undefined) process.stderr.write(`${output.stderr}\n`);
process.exitCode = output.exitCode;
// The verb is done, and a serving verb has closed what it started. Anything still holding the
// event loop (a socket a failed start-up left half-open, a retry timer) must not keep the command
// alive: exit once the output is flushed.
process.stdout.write('', () => process.stderr.write('', () => process.exit(output.exitCode)));
