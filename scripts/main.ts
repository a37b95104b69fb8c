/** Process entry of the `nitro-infer` command line. */
import { buffer } from 'node:stream/consumers';
import { run } from './cli.ts';

const output = await run(process.argv.slice(2), () => buffer(process.stdin));
if (output.stdout !== undefined) process.stdout.write(`${output.stdout}\n`);
if (output.stderr !== undefined) process.stderr.write(`${output.stderr}\n`);
process.exitCode = output.exitCode;
