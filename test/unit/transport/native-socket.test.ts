/**
 * The vsock wrapping code, exercised over AF_UNIX: sockets made with libc through koffi, adopted by
 * libuv handles, used as ordinary net.Server / net.Socket. vsock itself is only created, bound and
 * listened on here — never connected (on these machines that hangs; see DESIGN.md 5).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectNative, encodeSockaddr, listenNative } from '../../../transport/native-socket.ts';
import { connectTransport, listenTransport } from '../../../transport/transport.ts';
import { isNitroInferError } from '../../../shared/errors.ts';
import { codeOfAsync } from '../../helpers/codes.ts';

let directory = '';
beforeAll(async () => {
  directory = await mkdtemp(path.join(os.tmpdir(), 'ni-tr-'));
});
afterAll(async () => {
  await rm(directory, { recursive: true, force: true });
});

async function echoThrough(client: net.Socket, bytes: Buffer): Promise<Buffer> {
  const received: Buffer[] = [];
  let total = 0;
  return new Promise((resolve, reject) => {
    client.on('data', (chunk: Buffer) => {
      received.push(chunk);
      total += chunk.byteLength;
      if (total >= bytes.byteLength) resolve(Buffer.concat(received));
    });
    client.on('error', reject);
    client.write(bytes);
  });
}

describe('native sockets', () => {
  it('encodes sockaddr_vm as family 40, port, cid (little-endian)', () => {
    expect(encodeSockaddr({ kind: 'vsock', cid: 16, port: 5000 }).toString('hex')).toBe(
      '2800' + '0000' + '88130000' + '10000000' + '00000000',
    );
    const unix = encodeSockaddr({ kind: 'unix', path: '/a' });
    expect(unix.byteLength).toBe(110);
    expect(unix.subarray(0, 5).toString('hex')).toBe('01002f6100');
  });

  it('a natively listening server accepts net clients; 4 MiB echo with back-pressure', async () => {
    const socketPath = path.join(directory, 'listen.sock');
    const server = await listenNative({ kind: 'unix', path: socketPath }, (socket) => socket.pipe(socket));
    const client = net.connect(socketPath);
    const bytes = Buffer.alloc(4 * 1024 * 1024, 0x5a);
    bytes.writeUInt32BE(0xdeadbeef, 1000);
    expect((await echoThrough(client, bytes)).equals(bytes)).toBe(true);
    client.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  it('a natively connected socket talks to a net server', async () => {
    const socketPath = path.join(directory, 'connect.sock');
    const server = net.createServer((socket) => socket.pipe(socket));
    await new Promise<void>((resolve) => server.listen(socketPath, resolve));
    const client = await connectNative({ kind: 'unix', path: socketPath });
    const bytes = Buffer.from('hello through an adopted descriptor');
    expect((await echoThrough(client, bytes)).toString()).toBe(bytes.toString());
    client.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  it('connecting to a missing socket is ERR_TRANSPORT_FAILED', async () => {
    expect(
      await codeOfAsync(() => connectNative({ kind: 'unix', path: path.join(directory, 'none.sock') })),
    ).toBe('ERR_TRANSPORT_FAILED');
    expect(await codeOfAsync(() => connectTransport(`unix:${path.join(directory, 'none.sock')}`))).toBe(
      'ERR_TRANSPORT_FAILED',
    );
  });

  it('creates, binds and listens on vsock (never connects)', async (context) => {
    let server: net.Server;
    try {
      server = await listenTransport('vsock:any:0', () => {});
    } catch (error) {
      if (isNitroInferError(error) && error.code === 'ERR_TRANSPORT_UNSUPPORTED') {
        context.skip(`this kernel has no vsock: ${error.message}`);
      }
      throw error;
    }
    expect(server.listening).toBe(true);
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
});
