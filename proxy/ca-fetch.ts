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
      const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
      const outgoing = send(
        url,
        {
          method: init?.method ?? 'GET',
          headers: Object.fromEntries(headers.entries()),
          ...(url.protocol === 'https:' ? { ca } : {}),
        },
        (incoming) => {
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
          incoming.on('error', (error) => reject(new TypeError('fetch failed', { cause: error })));
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
      // The same shape as fetch's own failure, so callers see one kind of network error.
      outgoing.on('error', (error) => reject(new TypeError('fetch failed', { cause: error })));
      init?.signal?.addEventListener('abort', () => outgoing.destroy(new Error('aborted')), { once: true });
      outgoing.end(body ?? undefined);
    });
}
