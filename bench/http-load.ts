/**
 * HTTP load generator in its own process (as clients are): POSTs `total` bodies of `bytes` to `url`
 * with `concurrency` in flight over keep-alive connections; prints latency and throughput as JSON.
 * Usage: http-load.ts <url> <bytes> <total> <concurrency>
 */
import http from 'node:http';
import { randomBytes } from 'node:crypto';
import { load } from './stats.ts';

const [url, bytes, total, concurrency] = process.argv.slice(2) as [string, string, string, string];
const body = randomBytes(Number(bytes));
const agent = new http.Agent({ keepAlive: true, maxSockets: Number(concurrency) });
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
const result = await load(Number(total), Number(concurrency), post);
agent.destroy();
console.log(JSON.stringify(result));
