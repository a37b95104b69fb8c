/**
 * A `fetch` for the SDK that trusts a given CA bundle for TLS to the parent (a private CA, or a
 * self-signed certificate in a test deployment). Node 20's global fetch takes no CA option, and
 * NODE_EXTRA_CA_CERTS is read only at start-up, so this speaks node:https directly. TLS protects
 * only the transport: the enclave is trusted through attestation, whatever the certificate says.
 */
import { request as httpsRequest } from 'node:https';
import { request as httpRequest } from 'node:http';

/** Longest response read (the SDK bounds it again as it reads). */
const MAX_RESPONSE_BYTES = 34 * 1024 * 1024;

/** A fetch that verifies the parent's certificate against `ca` (PEM) instead of the system store. */
export function fetchWithCa(ca: string): typeof fetch {
  return (input, init) =>
    new Promise<Response>((resolve, reject) => {
      const url = new URL(input instanceof Request ? input.url : String(input));
      const headers = new Headers(init?.headers);
      const body = init?.body;
      if (body !== undefined && body !== null && !(body instanceof Uint8Array) && typeof body !== 'string') {
        reject(new TypeError('fetchWithCa sends byte and string bodies only'));
        return;
      }
      const signal = init?.signal ?? undefined;
      // fetch's own shape for a fired signal: its reason, or an AbortError. The SDK's transport
      // reads the signal itself to tell a timeout from an abort; this only has to settle at once.
      const aborted = () =>
        signal?.reason instanceof Error
          ? signal.reason
          : new DOMException('This operation was aborted', 'AbortError');
      if (signal?.aborted === true) {
        reject(aborted());
        return;
      }
      // The same shape as fetch's own failure, so callers see one kind of network error.
      const fail = (error: unknown) =>
        reject(signal?.aborted === true ? aborted() : new TypeError('fetch failed', { cause: error }));
      const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
      const outgoing = send(
        url,
        {
          method: init?.method ?? 'GET',
          headers: Object.fromEntries(headers.entries()),
          ...(url.protocol === 'https:' ? { ca } : {}),
        },
        (incoming) => {
          // An abort while the body streams in ends the response without 'end': settle on 'close'.
          incoming.on('close', () => {
            if (!incoming.complete) reject(signal?.aborted === true ? aborted() : closedEarly());
          });
          const parts: Buffer[] = [];
          let total = 0;
          incoming.on('data', (part: Buffer) => {
            total += part.byteLength;
            if (total > MAX_RESPONSE_BYTES) {
              incoming.destroy();
              reject(new TypeError('fetch failed', { cause: new Error('the response is too large') }));
              return;
            }
            parts.push(part);
          });
          incoming.on('error', fail);
          incoming.on('end', () => {
            const responseHeaders = new Headers();
            for (const [name, value] of Object.entries(incoming.headers)) {
              if (typeof value === 'string') responseHeaders.set(name, value);
              else if (Array.isArray(value)) for (const item of value) responseHeaders.append(name, item);
            }
            resolve(
              new Response(incoming.statusCode === 204 ? null : Buffer.concat(parts, total), {
                status: incoming.statusCode ?? 502,
                headers: responseHeaders,
              }),
            );
          });
        },
      );
      outgoing.on('error', fail);
      // The request and its response both die with the socket; nothing answers a dead call.
      const onAbort = () => outgoing.destroy(aborted());
      signal?.addEventListener('abort', onAbort, { once: true });
      outgoing.on('close', () => signal?.removeEventListener('abort', onAbort));
      outgoing.end(body ?? undefined);
    });
}

const closedEarly = () =>
  new TypeError('fetch failed', { cause: new Error('the connection closed before the response ended') });
