/**
 * `@aws-sdk/client-kms` over the enclave's only way out (DESIGN.md 4.6): an `https.Agent` whose
 * connections are opened by the transport to the parent (vsock CID 3 port 8000 in production, a
 * Unix socket in simulation) and then run TLS to the real KMS host name. So TLS, certificate checks
 * and SigV4 are the ordinary ones, and the parent sees only ciphertext.
 */
import https from 'node:https';
import type { Duplex } from 'node:stream';
import tls from 'node:tls';
import { KMS } from '@aws-sdk/client-kms';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import type { CredentialStore } from './credentials.ts';

/** Opens a fresh byte stream to the parent's KMS proxy. */
/**
 * Opens a fresh byte stream to the parent's KMS proxy. Synchronous for Unix and TCP; vsock's
 * connect is asynchronous, hence the promise form.
 */
export type OpenTransport = () => Duplex | Promise<Duplex>;

/** Options of {@link createKmsClient}. */
export interface KmsClientOptions {
  readonly region: string;
  readonly openTransport: OpenTransport;
  readonly credentials: CredentialStore;
  /** Extra CAs to trust besides the system's (the simulated CA in simulation). */
  readonly extraCaCertificates?: readonly string[];
  /** Overrides the regional endpoint (tests); TLS still checks the host name in it. */
  readonly endpoint?: string;
  /** Milliseconds before a KMS call is abandoned. */
  readonly requestTimeoutMs?: number;
}

class TransportAgent extends https.Agent {
  readonly #openTransport: OpenTransport;

  constructor(openTransport: OpenTransport, options: https.AgentOptions) {
    super(options);
    this.#openTransport = openTransport;
  }

  override createConnection(
    options: tls.ConnectionOptions,
    callback?: (error: Error | null, stream: Duplex) => void,
  ): Duplex | undefined {
    const opened = this.#openTransport();
    if (!(opened instanceof Promise)) return tls.connect({ ...options, socket: opened });
    // http.Agent waits for the callback when createConnection returns nothing.
    opened.then(
      (socket) => callback?.(null, tls.connect({ ...options, socket })),
      (error: Error) => callback?.(error, undefined as unknown as Duplex),
    );
    return undefined;
  }
}

/** The KMS client the enclave uses; every call goes through the parent transport. */
export function createKmsClient(options: KmsClientOptions): KMS {
  const agent = new TransportAgent(options.openTransport, {
    keepAlive: true,
    maxSockets: 4,
    // Built once: given as `ca`, every connection would parse the whole root store again (~30 ms
    // per KMS call here, on the path of every model load).
    ...(options.extraCaCertificates === undefined
      ? {}
      : {
          secureContext: tls.createSecureContext({
            ca: [...tls.rootCertificates, ...options.extraCaCertificates],
          }),
        }),
  });
  return new KMS({
    region: options.region,
    credentials: options.credentials.provider,
    maxAttempts: 3,
    ...(options.endpoint === undefined ? {} : { endpoint: options.endpoint }),
    requestHandler: new NodeHttpHandler({
      httpsAgent: agent,
      requestTimeout: options.requestTimeoutMs ?? 10_000,
      connectionTimeout: 5_000,
    }),
  });
}
