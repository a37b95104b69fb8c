/**
 * HTTP load generator in its own process (as clients are): POSTs `total` bodies of `bytes` to `url`
 * over keep-alive connections for each load in the list — closed loops (`closed:N`, N in flight)
 * or open loops (`open:R` a second, or `open:<f>x` of the last closed loop's throughput, latency
 * from the scheduled send time); prints latency, throughput and peak RSS as JSON.
 * Usage: http-load.ts <url> <bytes> <total> <loads: closed:1,closed:16,open:0.5x…>
 */
import http from 'node:http';
import { randomBytes } from 'node:crypto';
import { peakRssOf } from './placement.ts';
import { driveAll } from './stats.ts';

const [url, bytes, total, specs] = process.argv.slice(2) as [string, string, string, string];
const body = randomBytes(Number(bytes));
// Open loops may have more calls in flight than any closed one; each gets a connection then.
const agent = new http.Agent({ keepAlive: true });
const target = new URL(url);

function post(): Promise<void> {
  return new Promise((resolve, reject) => {
    const request = http.request(
      {
        agent,
        host: target.hostname,
        port: target.port,
        path: target.pathname,
        method: 'POST',
        headers: { 'content-type': 'message/ohttp-req', 'content-length': body.byteLength },
      },
      (response) => {
        let received = 0;
        response.on('data', (chunk: Buffer) => (received += chunk.byteLength));
        response.on('end', () =>
          response.statusCode === 200 && received === body.byteLength
            ? resolve()
            : reject(new Error(`status ${response.statusCode}, ${received} bytes`)),
        );
      },
    );
    request.on('error', reject);
    request.end(body);
  });
}

for (let index = 0; index < 50; index++) await post();
const results = await driveAll(specs, Number(total), post);
agent.destroy();
console.log(JSON.stringify({ results, peakRssMiB: peakRssOf('self') }));
