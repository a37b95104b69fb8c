/**
 * The client side of the end-to-end benchmark, in its own process (as a real client is): the SDK
 * attests once, then sends `total` inference requests, closed loop (`closed:N`, N in flight) or
 * open loop (`open:R`, R requests a second on a fixed schedule); prints latency, throughput, peak
 * RSS and affinity as JSON.
 *
 * `binary` sends the inputs as typed arrays, which the SDK sends as binary tensor data (issue 11)
 * once it supports them. Feature-detected: when the SDK refuses typed arrays (or the enclave does
 * not take what it sent), this warns on stderr and falls back to JSON, and the result says `json`.
 * Usage: sdk-load.ts <endpoint> <pcrs.json> <root.pem> <model> <request.json> <total> <loads: closed:N,open:R…> [json|binary]
 */
import { readFile } from 'node:fs/promises';
import { createClient } from '../client/index.ts';
import type { V2InferenceRequest } from '../shared/inference/v2.ts';
import { certificatePemToDer } from '../shared/attestation/index.ts';
import { affinityOf, peakRssOf } from './placement.ts';
import { driveAll } from './stats.ts';

const [endpoint, pcrs, root, model, requestFile, total, specs, body = 'json'] = process.argv.slice(
  2,
) as string[] as [string, string, string, string, string, string, string, string | undefined];
const client = createClient({
  endpoint,
  policy: { pcrs: await readFile(pcrs, 'utf8'), roots: [certificatePemToDer(await readFile(root, 'utf8'))] },
});
const json = JSON.parse(await readFile(requestFile, 'utf8')) as V2InferenceRequest;
await client.attest();

let request: V2InferenceRequest = json;
let sent = 'json';
if (body === 'binary') {
  const typed = {
    inputs: json.inputs.map((input) => ({ ...input, data: Float32Array.from(input.data as number[]) })),
  } as unknown as V2InferenceRequest;
  try {
    await client.infer(model, typed);
    request = typed;
    sent = 'binary';
  } catch (error) {
    process.stderr.write(
      `warning: the SDK does not send typed-array inputs yet (${(error as Error).message.split('\n')[0]}); falling back to JSON bodies\n`,
    );
  }
}
for (let index = 0; index < 20; index++) await client.infer(model, request);
const results = await driveAll(specs, Number(total), () => client.infer(model, request));
console.log(
  JSON.stringify({ results, body: sent, peakRssMiB: peakRssOf('self'), affinity: affinityOf(process.pid) }),
);
