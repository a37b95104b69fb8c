/**
 * One transport interface for both sides of the link and for the enclave's KMS connection
 * (DESIGN.md 5): an address string in, a real `net.Server` or `net.Socket` out. vsock goes through
 * {@link listenNative}/{@link connectNative}; Unix and TCP use Node's own `net`.
 */
import net from 'node:net';
import { TransportError } from '../shared/errors.ts';
import { parseTransportAddress } from '../shared/transport-address.ts';
import type { TransportAddress } from '../shared/transport-address.ts';
import { connectNative, listenNative } from './native-socket.ts';

/** Listens on `address`; resolves once the server accepts connections. */
export async function listenTransport(
  address: string | TransportAddress,
  onConnection: (socket: net.Socket) => void,
): Promise<net.Server> {
  const parsed = typeof address === 'string' ? parseTransportAddress(address) : address;
  if (parsed.kind === 'vsock') return listenNative(parsed, onConnection);
  const server = net.createServer(onConnection);
  await new Promise<void>((resolve, reject) => {
    server.once('error', (error) =>
      reject(
        new TransportError('ERR_TRANSPORT_FAILED', `cannot listen on ${String(address)}: ${error.message}`),
      ),
    );
    if (parsed.kind === 'unix') server.listen(parsed.path, () => resolve());
    else server.listen(parsed.port, parsed.host, () => resolve());
  });
  return server;
}

/** Connects to `address`; resolves with a connected socket. */
export async function connectTransport(address: string | TransportAddress): Promise<net.Socket> {
  const parsed = typeof address === 'string' ? parseTransportAddress(address) : address;
  if (parsed.kind === 'vsock') return connectNative(parsed);
  const socket =
    parsed.kind === 'unix' ? net.connect(parsed.path) : net.connect({ host: parsed.host, port: parsed.port });
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', () => {
      socket.off('error', reject);
      resolve();
    });
    socket.once('error', (error) => {
      socket.destroy();
      reject(
        new TransportError('ERR_TRANSPORT_FAILED', `cannot connect to ${String(address)}: ${error.message}`),
      );
    });
  });
  return socket;
}

/**
 * A synchronous stream factory for clients that need a `Duplex` at once (the KMS client's
 * `createConnection`): Unix and TCP connect lazily through `net`; vsock is not offered here because
 * its connect is asynchronous — callers use {@link connectTransport} and a socket pair instead.
 */
export function openStreamSync(address: TransportAddress): net.Socket {
  if (address.kind === 'unix') return net.connect(address.path);
  if (address.kind === 'tcp') return net.connect({ host: address.host, port: address.port });
  throw new TransportError('ERR_TRANSPORT_UNSUPPORTED', 'vsock streams are opened with connectTransport');
}
