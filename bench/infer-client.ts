/**
 * The parent's side of plaintext-link inference, in its own process: sends `total` `infer` requests
 * with `concurrency` in flight and prints the latency summary and throughput as JSON.
 * Usage: infer-client.ts <socket> <model> <request JSON file> <total> <concurrency>
 */
import { readFile } from 'node:fs/promises';
import { TestLinkClient } from '../test/helpers/link-client.ts';
import { load } from './stats.ts';

const [socketPath, model, requestFile, total, concurrency] = process.argv.slice(2) as [
  string,
  string,
  string,
  string,
  string,
];
const body = new Uint8Array(await readFile(requestFile));
const client = await TestLinkClient.connect(socketPath);
for (let index = 0; index < 50; index++) await client.request('infer', { model, body });
const result = await load(Number(total), Number(concurrency), async () => {
  const response = await client.request('infer', { model, body });
  if (response.type !== 'ok') throw new Error(String(response.fields.get('code')));
});
client.close();
console.log(JSON.stringify(result));
