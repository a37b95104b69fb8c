/**
 * The parent's side of a model upload, in its own process as in a deployment: reads a sealed
 * artifact and streams it over the link with 8 chunks of 1 MiB in flight. Prints the elapsed
 * milliseconds from the first byte sent to the enclave's answer to model.end.
 * Usage: upload-client.ts <socket> <name> <artifact file>
 */
import { readFile } from 'node:fs/promises';
import { TestLinkClient } from '../test/helpers/link-client.ts';

const [socketPath, name, file] = process.argv.slice(2) as [string, string, string];
const artifact = new Uint8Array(await readFile(file));
const client = await TestLinkClient.connect(socketPath);
const start = process.hrtime.bigint();
const response = await client.upload(name, artifact, 1024 * 1024, 8);
const elapsedMs = Number(process.hrtime.bigint() - start) / 1e6;
client.close();
if (response.type !== 'ok') {
  console.error(`load failed: ${String(response.fields.get('code'))}`);
  process.exit(1);
}
console.log(JSON.stringify({ elapsedMs }));
