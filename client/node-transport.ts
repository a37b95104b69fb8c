/**
 * The SDK's HTTP on Node without a caller's `fetch`: node:http / node:https through one keep-alive
 * agent per client. Global fetch (undici) costs ~0.9 ms of CPU per request in its web streams and
 * request/response objects (issue 11), more than the rest of the SDK; this path reads the body as
 * Buffers straight off the socket. It keeps fetch's contract as `fetchTransport` sees it: the
 * call's deadline and AbortSignal end the exchange at any point (also mid-body), network failures
 * carry their system or TLS code, and the body is bounded before it is buffered.
 */
import { Agent as HttpAgent, request as httpRequest } from 'node:http';
import type { IncomingMessage } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { ClientError } from '../shared/errors.ts';
import { MAX_RESPONSE_BYTES } from './transport.ts';
import type { CallContext, Outgoing, Reply, Transport } from './transport.ts';

/**
 * Idle connections are kept this long at most (Node's global agent's value); a shorter
 * `Keep-Alive: timeout=` from the server wins, less a second, so a reused socket is not one the
 * server is closing. Idle sockets are unref'd by the agent: they never keep a process alive.
 */
const IDLE_SOCKET_MS = 5000;
// The global agent's settings: Nagle off (a request goes out in one write, an answer is not held
// back), the most recently used socket first so idle ones age out.
const AGENT_OPTIONS = {
  keepAlive: true,
  timeout: IDLE_SOCKET_MS,
  scheduling: 'lifo',
  noDelay: true,
} as const;

export class NodeHttpTransport implements Transport {
  #http: HttpAgent | undefined;
  #https: HttpsAgent | undefined;

  send(url: string, request: Outgoing, context: CallContext): Promise<Reply> {
    let target: URL;
    try {
      // A call that has already ended sends nothing.
      context.check();
      target = new URL(url);
    } catch (error) {
      return Promise.reject(context.failure(error, url));
    }
    const secure = target.protocol === 'https:';
    if (!secure && target.protocol !== 'http:')
      return Promise.reject(context.failure(new Error('not an http(s) URL'), url));
    const agent = secure
      ? (this.#https ??= new HttpsAgent(AGENT_OPTIONS))
      : (this.#http ??= new HttpAgent(AGENT_OPTIONS));
    const body = request.body;
    const headers: Record<string, string> = { ...request.headers };
    if (body !== undefined) headers['content-length'] = String(body.byteLength);
    return new Promise<Reply>((resolve, reject) => {
      const signal = context.signal;
      let settled = false;
      let incoming: IncomingMessage | undefined;
      const fail = (error: unknown) => {
        if (settled) return;
        settled = true;
        signal?.removeEventListener('abort', onAbort);
        // Destroying the request destroys its socket, so nothing more is read or sent; an
        // unfinished exchange never goes back to the agent for reuse.
        outgoing.destroy();
        incoming?.destroy();
        reject(context.failure(error, url));
      };
      // The fired signal is what failure() reports (ERR_CLIENT_TIMEOUT or ERR_CLIENT_ABORTED).
      const onAbort = () => fail(new Error('aborted'));
      const tooLarge = () => new ClientError('ERR_CLIENT_REQUEST_FAILED', 'the response is too large');
      const outgoing = (secure ? httpsRequest : httpRequest)(
        {
          protocol: target.protocol,
          hostname: target.hostname.replace(/^\[(.*)\]$/, '$1'),
          port: target.port,
          path: `${target.pathname}${target.search}`,
          method: request.method,
          headers,
          agent,
        },
        (response) => {
          incoming = response;
          // Bounded before anything is buffered: a declared length over the limit is refused at once.
          if (Number(response.headers['content-length'] ?? '0') > MAX_RESPONSE_BYTES) {
            fail(tooLarge());
            return;
          }
          const parts: Buffer[] = [];
          let total = 0;
          response.on('data', (part: Buffer) => {
            total += part.byteLength;
            if (total > MAX_RESPONSE_BYTES) {
              fail(tooLarge());
              return;
            }
            parts.push(part);
          });
          response.on('error', fail);
          // A connection that ends before the body does is the network's failure (as fetch's is).
          response.on('close', () => {
            if (!response.complete)
              fail(Object.assign(new Error('the connection closed mid-body'), { code: 'ECONNRESET' }));
          });
          response.on('end', () => {
            if (settled) return;
            settled = true;
            signal?.removeEventListener('abort', onAbort);
            const bytes = parts.length === 1 ? parts[0]! : Buffer.concat(parts, total);
            resolve(nodeReply(response, new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength)));
          });
        },
      );
      outgoing.on('error', fail);
      signal?.addEventListener('abort', onAbort, { once: true });
      outgoing.end(body);
    });
  }

  /** Closes the idle connections; a later call opens a new one. */
  close(): void {
    this.#http?.destroy();
    this.#https?.destroy();
    this.#http = undefined;
    this.#https = undefined;
  }
}

/** Header values as fetch's Headers.get gives them: repeated fields joined with ", ". */
function nodeReply(response: IncomingMessage, bytes: Uint8Array): Reply {
  const raw = response.rawHeaders;
  return {
    status: response.statusCode ?? 0,
    bytes,
    header(name: string): string | null {
      let value: string | null = null;
      for (let index = 0; index + 1 < raw.length; index += 2) {
        if (raw[index]!.toLowerCase() !== name) continue;
        value = value === null ? raw[index + 1]! : `${value}, ${raw[index + 1]!}`;
      }
      return value;
    },
  };
}
