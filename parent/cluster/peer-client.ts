/**
 * Calls a peer parent's cluster listener (`parent/cluster/peer-app.ts`). Each call has a timeout
 * and a bounded response body; any failure is `ERR_CLUSTER_PEER_UNAVAILABLE` with the peer's own
 * error code when it sent one, so a sync can move on to the next peer.
 */
import { ClusterError } from '../../shared/errors.ts';
import { PEER_BODY_LIMIT_BYTES } from './peer-messages.ts';

/** One peer round trip; an exchange takes three of them. */
export const PEER_REQUEST_TIMEOUT_MS = 5_000;

export type PeerFetch = typeof fetch;

/** GET or POST `path` on `base`, JSON in and out. */
export async function callPeer(
  base: string,
  path: string,
  body: unknown,
  fetchImpl: PeerFetch = fetch,
): Promise<unknown> {
  let response: Response;
  try {
    response = await fetchImpl(new URL(path, base), {
      method: body === undefined ? 'GET' : 'POST',
      ...(body === undefined
        ? {}
        : { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } }),
      signal: AbortSignal.timeout(PEER_REQUEST_TIMEOUT_MS),
      redirect: 'error',
    });
  } catch {
    throw unavailable(`peer ${safeOrigin(base)} is unreachable`);
  }
  const text = await boundedText(response);
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw unavailable(`peer ${safeOrigin(base)} answered ${response.status} without JSON`);
  }
  if (!response.ok) {
    const code = (json as { error?: { code?: unknown } } | null)?.error?.code;
    throw unavailable(
      `peer ${safeOrigin(base)} answered ${response.status}${typeof code === 'string' ? ` ${code.slice(0, 64)}` : ''}`,
    );
  }
  return json;
}

async function boundedText(response: Response): Promise<string> {
  const reader = response.body?.getReader();
  if (reader === undefined) return '';
  const parts: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > PEER_BODY_LIMIT_BYTES) {
      await reader.cancel();
      throw unavailable('a peer answered with more than the cluster body limit');
    }
    parts.push(value);
  }
  return Buffer.concat(parts).toString('utf8');
}

function safeOrigin(base: string): string {
  try {
    return new URL(base).origin;
  } catch {
    return '(invalid URL)';
  }
}

function unavailable(message: string): ClusterError {
  return new ClusterError('ERR_CLUSTER_PEER_UNAVAILABLE', message);
}
