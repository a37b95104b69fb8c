/**
 * Bundled beside the production entry and run inside the guest, where vsock loopback (CID 1) is
 * real AF_VSOCK: the start-up self-check, the shipped listen/connect code carrying bytes both ways,
 * and connect() to a port nobody listens on (the loopback transport resets at once) as a typed
 * error whose errno koffi reported from its worker thread. Prints `VSOCK_PROBE <json>` lines; the
 * test on the host judges them.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { Socket } from 'node:net';
import { isNitroInferError } from '../../shared/errors.ts';
import { checkVsockSupport, connectTransport, listenTransport } from '../../transport/index.ts';

const print = (line: Record<string, unknown>) =>
  process.stdout.write(`VSOCK_PROBE ${JSON.stringify(line)}\n`);
const sha256 = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');

async function step(name: string, action: () => Promise<Record<string, unknown>>): Promise<void> {
  try {
    print({ name, ...(await action()) });
  } catch (error) {
    print({
      name,
      code: isNitroInferError(error) ? error.code : `uncaught ${String(error)}`,
      message: error instanceof Error ? error.message : '',
    });
  }
}

function readAll(socket: Socket, length: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let received = 0;
    socket.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      received += chunk.byteLength;
      if (received >= length) resolve(Buffer.concat(chunks));
    });
    socket.once('error', reject);
  });
}

await step('selfCheck', async () => {
  checkVsockSupport();
  return { ok: true };
});

await step('echo', async () => {
  const server = await listenTransport('vsock:any:5000', (socket) => socket.pipe(socket));
  const payload = randomBytes(1024 * 1024);
  const client = await connectTransport('vsock:1:5000');
  const echoed = readAll(client, payload.byteLength);
  client.write(payload);
  const received = await echoed;
  client.destroy();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return {
    sent: sha256(payload),
    received: sha256(received.subarray(0, payload.byteLength)),
    bytes: received.byteLength,
  };
});

await step('noListener', async () => {
  const socket = await connectTransport('vsock:1:5001');
  socket.destroy();
  return { connected: true };
});
