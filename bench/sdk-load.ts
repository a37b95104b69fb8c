/**
 * The client side of the end-to-end benchmark, in its own process (as a real client is): the SDK
 * attests once, then sends `total` inference requests with `concurrency` in flight; prints latency
 * and throughput as JSON. Usage: sdk-load.ts <endpoint> <pcrs.json> <root.pem> <model> <request.json> <total> <concurrency>
 */
import { readFile } from 'node:fs/promises';
import { createClient } from '../client/index.ts';
import { certificatePemToDer } from '../shared/attestation/index.ts';
import { load } from './stats.ts';

const [endpoint, pcrs, root, model, requestFile, total, concurrency] = process.argv.slice(2) as string[] as [
  string,
  string,
  string,
  string,
  string,
  string,
  string,
];
const client = createClient({
  endpoint,
  policy: { pcrs: await readFile(pcrs, 'utf8'), roots: [certificatePemToDer(await readFile(root, 'utf8'))] },
});
const request = JSON.parse(await readFile(requestFile, 'utf8'));
await client.attest();
for (let index = 0; index < 20; index++) await client.infer(model, request);
const result = await load(Number(total), Number(concurrency), () => client.infer(model, request));
console.log(JSON.stringify(result));
