/**
 * A tap on the parent ↔ enclave link: a Unix socket proxy that records every byte in both
 * directions, so tests can search what the parent actually sent and received.
 */
import net from 'node:net';

export class LinkTap {
  readonly chunks: Buffer[] = [];
  readonly #server: net.Server;
  readonly #sockets = new Set<net.Socket>();

  private constructor(server: net.Server) {
    this.#server = server;
  }

  static async start(listenPath: string, targetPath: string): Promise<LinkTap> {
    const server: net.Server = net.createServer((inbound) => {
      const outbound = net.connect(targetPath);
      for (const socket of [inbound, outbound]) {
        tap.#sockets.add(socket);
        socket.on('close', () => tap.#sockets.delete(socket));
        socket.on('error', () => {
          inbound.destroy();
          outbound.destroy();
        });
        socket.on('data', (chunk: Buffer) => tap.chunks.push(Buffer.from(chunk)));
      }
      inbound.pipe(outbound).pipe(inbound);
    });
    const tap: LinkTap = new LinkTap(server);
    await new Promise<void>((resolve) => server.listen(listenPath, resolve));
    return tap;
  }

  /** Everything seen so far, concatenated per chunk boundary-safe search. */
  contains(needle: Buffer): boolean {
    return Buffer.concat(this.chunks).includes(needle);
  }

  async close(): Promise<void> {
    for (const socket of this.#sockets) socket.destroy();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}
