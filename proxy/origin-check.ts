/**
 * The local proxy's guard against web pages.
 *
 * Loopback is not a boundary against the browser on the same machine: a web page can reach
 * 127.0.0.1 directly (cross-origin) or through DNS rebinding (its own name resolving to 127.0.0.1,
 * so the page is same-origin with the proxy and reads its answers). So every request must name the
 * proxy in `Host` (a rebound name does not), and a request with an `Origin` (every cross-origin
 * browser request, and every browser POST) must come from the proxy's own origin, which serves no
 * page. Non-browser clients (curl, KServe/Triton SDKs) send the listen address and no Origin.
 */
import type { IncomingMessage } from 'node:http';

/** What a client that means this proxy puts in `Host`: the listen address, or a loopback name. */
export function hostsNaming(given: string, bound: string, port: number): ReadonlySet<string> {
  const names = [given.includes(':') ? `[${given}]` : given, bound, 'localhost', '127.0.0.1', '[::1]'];
  // Port 80 is the default, and clients then leave it out of `Host` and `Origin`.
  return new Set(
    names.flatMap((name) => [`${name.toLowerCase()}:${port}`, ...(port === 80 ? [name.toLowerCase()] : [])]),
  );
}

/**
 * Why a request is refused (403, before anything else is read or forwarded), or undefined: it does
 * not name this proxy in `Host` (DNS rebinding), or carries an `Origin` other than its own (a page).
 */
export function refusal(
  request: IncomingMessage,
  own: ReadonlySet<string>,
  anyHost: boolean,
): string | undefined {
  const host = request.headers.host?.toLowerCase();
  if (!anyHost && (host === undefined || !own.has(host)))
    return 'the Host header does not name this proxy (DNS rebinding?): use its listen address or localhost';
  const origin = request.headers.origin;
  if (origin === undefined) return undefined;
  let named: string | undefined;
  try {
    const url = new URL(origin);
    if (url.protocol === 'http:' && url.origin === origin.toLowerCase()) named = url.host;
  } catch {
    named = undefined;
  }
  if (named === undefined || !own.has(named))
    return 'cross-origin requests are refused: the proxy serves no web page';
  return undefined;
}
