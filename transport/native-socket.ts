/**
 * Sockets Node's `net` cannot make. Node refuses AF_VSOCK file descriptors (libuv guesses their
 * type as "unknown"), so the socket is created, bound, listened on or connected through libc with
 * koffi, and the descriptor is then adopted by a libuv TCP stream handle — `uv_tcp_open` takes any
 * stream socket — which gives a real `net.Server` / `net.Socket` (back-pressure, `tls.connect`,
 * `http`). The same code path handles AF_UNIX descriptors, which is how tests exercise it without
 * ever calling `connect()` on vsock (on the CI machines that call is routed to the hypervisor and hangs).
 */
import net from 'node:net';
import koffi from 'koffi';
import { TransportError } from '../shared/errors.ts';

const AF_UNIX = 1;
/** Linux `AF_VSOCK`. */
const AF_VSOCK = 40;
const SOCK_STREAM = 1;
const SOCK_CLOEXEC = 0o2000000;
/** `sizeof(struct sockaddr_vm)`: family, reserved, port, cid, 4 bytes of zero. */
const SOCKADDR_VM_BYTES = 16;
/** `sizeof(struct sockaddr_un)`: family + 108 bytes of path. */
const SOCKADDR_UN_BYTES = 110;

/** The libuv TCP handle class Node uses internally; not public API, hence the self-test below. */
interface StreamHandle {
  open(fd: number): number;
}
interface TcpBinding {
  TCP: new (type: number) => StreamHandle;
  constants: { SOCKET: number; SERVER: number };
}

interface Libc {
  socket: (domain: number, type: number, protocol: number) => number;
  bind: (fd: number, address: Buffer, length: number) => number;
  listen: (fd: number, backlog: number) => number;
  connect: {
    async: (
      fd: number,
      address: Buffer,
      length: number,
      done: (error: unknown, result: number) => void,
    ) => void;
  };
  close: (fd: number) => number;
}

let libc: Libc | undefined;
function loadLibc(): Libc {
  if (libc !== undefined) return libc;
  const library = koffi.load('libc.so.6');
  libc = {
    socket: library.func('int socket(int domain, int type, int protocol)'),
    bind: library.func('int bind(int fd, const uint8_t *address, uint32_t length)'),
    listen: library.func('int listen(int fd, int backlog)'),
    connect: library.func('int connect(int fd, const uint8_t *address, uint32_t length)'),
    close: library.func('int close(int fd)'),
  } as unknown as Libc;
  return libc;
}

function tcpBinding(): TcpBinding {
  const binding = (process as unknown as { binding(name: string): unknown }).binding('tcp_wrap') as
    Partial<TcpBinding> | undefined;
  if (typeof binding?.TCP !== 'function' || typeof binding.constants?.SERVER !== 'number') {
    throw new TransportError(
      'ERR_TRANSPORT_UNSUPPORTED',
      `Node ${process.version} does not expose the stream handle that vsock sockets need; ` +
        'run the socat fallback (parent/README.md) and use a unix: address',
    );
  }
  return binding as TcpBinding;
}

/** The address families this module can create. */
export type NativeFamily = 'vsock' | 'unix';

/** Encodes `struct sockaddr_vm` or `struct sockaddr_un` (little-endian host, as on x86-64 and arm64). */
export function encodeSockaddr(
  address: { kind: 'vsock'; cid: number; port: number } | { kind: 'unix'; path: string },
): Buffer {
  if (address.kind === 'vsock') {
    const bytes = Buffer.alloc(SOCKADDR_VM_BYTES);
    bytes.writeUInt16LE(AF_VSOCK, 0);
    bytes.writeUInt32LE(address.port, 4);
    bytes.writeUInt32LE(address.cid, 8);
    return bytes;
  }
  const bytes = Buffer.alloc(SOCKADDR_UN_BYTES);
  bytes.writeUInt16LE(AF_UNIX, 0);
  bytes.write(address.path, 2, 'utf8');
  return bytes;
}

function newSocket(kind: NativeFamily): number {
  const fd = loadLibc().socket(kind === 'vsock' ? AF_VSOCK : AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    const errno = koffi.errno();
    throw new TransportError(
      errno === 97 /* EAFNOSUPPORT */ ? 'ERR_TRANSPORT_UNSUPPORTED' : 'ERR_TRANSPORT_FAILED',
      errno === 97
        ? `this kernel has no ${kind} sockets (is the vsock module loaded?); the socat fallback in parent/README.md needs them too`
        : `socket(${kind}) failed with errno ${errno}`,
    );
  }
  return fd;
}

function fail(fd: number, what: string, errno: number): never {
  loadLibc().close(fd);
  throw new TransportError('ERR_TRANSPORT_FAILED', `${what} failed with errno ${errno}`);
}

/**
 * Creates, binds and listens on a native socket and returns a listening `net.Server` around it.
 * `onConnection` receives ordinary `net.Socket`s.
 */
export async function listenNative(
  address: { kind: 'vsock'; cid: number; port: number } | { kind: 'unix'; path: string },
  onConnection: (socket: net.Socket) => void,
  backlog = 128,
): Promise<net.Server> {
  const { TCP, constants } = tcpBinding();
  const c = loadLibc();
  const fd = newSocket(address.kind);
  const sockaddr = encodeSockaddr(address);
  if (c.bind(fd, sockaddr, sockaddr.byteLength) !== 0) fail(fd, `bind(${describe(address)})`, koffi.errno());
  if (c.listen(fd, backlog) !== 0) fail(fd, `listen(${describe(address)})`, koffi.errno());
  const handle = new TCP(constants.SERVER);
  const status = handle.open(fd);
  if (status !== 0) fail(fd, 'adopting the listening socket', -status);
  const server = net.createServer(onConnection);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    // `listen(handle)` takes a TCP handle as is: no address lookup, no new socket.
    server.listen(handle as unknown as net.ListenOptions, backlog, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return server;
}

/**
 * Connects a native socket off the event loop (a blocking `connect` on a koffi worker thread) and
 * returns it as a `net.Socket`. Never called on vsock in tests: see the module comment.
 */
export async function connectNative(
  address: { kind: 'vsock'; cid: number; port: number } | { kind: 'unix'; path: string },
): Promise<net.Socket> {
  const { TCP, constants } = tcpBinding();
  const c = loadLibc();
  const fd = newSocket(address.kind);
  const sockaddr = encodeSockaddr(address);
  const result = await new Promise<{ status: number; errno: number }>((resolve, reject) => {
    c.connect.async(fd, sockaddr, sockaddr.byteLength, (error, status) => {
      if (error !== null && error !== undefined) reject(error);
      // errno is per thread; koffi's async calls report it on the calling thread afterwards.
      else resolve({ status, errno: status === 0 ? 0 : koffi.errno() });
    });
  });
  if (result.status !== 0) fail(fd, `connect(${describe(address)})`, result.errno);
  const handle = new TCP(constants.SOCKET);
  const status = handle.open(fd);
  if (status !== 0) fail(fd, 'adopting the connected socket', -status);
  return new net.Socket({ handle, readable: true, writable: true } as unknown as net.SocketConstructorOpts);
}

/**
 * Start-up self-test: the stream handle Node must lend us exists, and the kernel creates vsock
 * sockets. Throws {@link TransportError} with the fallback named when either is missing.
 */
export function checkVsockSupport(): void {
  const { TCP, constants } = tcpBinding();
  if (typeof new TCP(constants.SOCKET).open !== 'function') {
    throw new TransportError(
      'ERR_TRANSPORT_UNSUPPORTED',
      `Node ${process.version} cannot adopt socket descriptors`,
    );
  }
  const fd = newSocket('vsock');
  loadLibc().close(fd);
}

function describe(address: { kind: string; cid?: number; port?: number; path?: string }): string {
  return address.kind === 'unix' ? `unix:${address.path}` : `vsock:${address.cid}:${address.port}`;
}
