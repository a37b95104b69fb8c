/**
 * A stand-in enclave for the relay benchmark, in its own process: the real link server answering
 * `ohttp` with the request body (an echo), so only the parent and the link are measured.
 * Usage: echo-enclave.ts <socket path>; prints "ready" once listening.
 */
import net from 'node:net';
import { rmSync } from 'node:fs';
import { LinkServer } from '../enclave/server/link-server.ts';
import type { LinkHandler } from '../enclave/server/link-server.ts';

const socketPath = process.argv[2] as string;
rmSync(socketPath, { force: true });
const handlers = new Map<string, LinkHandler>([
  ['ohttp', async (fields) => ({ body: fields.get('body') })],
  ['status', async () => ({ models: [] })],
  ['credentials', async () => ({})],
]);
const server = net.createServer((socket) => new LinkServer(handlers, () => {}).accept(socket));
server.listen(socketPath, () => console.log('ready'));
process.on('SIGTERM', () => process.exit(0));
process.on('SIGINT', () => process.exit(0));
