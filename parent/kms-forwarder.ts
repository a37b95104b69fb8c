/**
 * The parent's stand-in for AWS's `vsock-proxy` in simulation: every connection from the enclave
 * on a local socket (Unix here; vsock in production is AWS's proxy) is piped to one fixed TCP
 * destination, which must be on the allow-list. The bytes are TLS between the enclave and KMS; the
 * parent only moves them.
 */
import net from 'node:net';
import { listenTransport } from '../transport/index.ts';

/** Options of {@link startKmsForwarder}. */
export interface KmsForwarderOptions {
  /** Where the enclave connects: `unix:<path>` in simulation, or `vsock:any:<port>`. */
  readonly listen: string;
  readonly targetHost: string;
  readonly targetPort: number;
  /** `host:port` entries the forwarder may connect to; the target must be one of them. */
  readonly allowList: readonly string[];
}

/** A running forwarder. */
export interface KmsForwarder {
  close(): Promise<void>;
}

/** Starts forwarding; refuses a target that is not allowed. */
export async function startKmsForwarder(options: KmsForwarderOptions): Promise<KmsForwarder> {
  const target = `${options.targetHost}:${options.targetPort}`;
  if (!options.allowList.includes(target))
    throw new Error(`KMS forwarder target ${target} is not on the allow-list`);
  const sockets = new Set<net.Socket>();
  const server = await listenTransport(options.listen, (inbound) => {
    const outbound = net.connect(options.targetPort, options.targetHost);
    for (const socket of [inbound, outbound]) {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
      socket.on('error', () => {
        inbound.destroy();
        outbound.destroy();
      });
    }
    inbound.pipe(outbound).pipe(inbound);
  });
  return {
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}
