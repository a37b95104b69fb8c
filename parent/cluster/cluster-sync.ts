/**
 * Keeps this instance's enclave on the fleet's cluster key (docs/protocols.md "Cluster key"): after
 * every link (re)connect and then periodically, it reads its enclave's `cluster.status` and every
 * peer parent's, and when a peer holds a key that ranks higher (`compareClusterKeys`) it relays the
 * attested exchange between the two enclaves. The parent only carries opaque documents and
 * ciphertext; both enclaves check everything. With no peer, or none ahead, the enclave keeps its
 * own key; when that key is older than `rotateAfterMs` and no peer is ahead, it asks for a rotation
 * and the rest of the fleet converges on the new epoch.
 */
import { compareClusterKeys } from '../../shared/cluster-preference.ts';
import type { ClusterKeyFacts } from '../../shared/cluster-preference.ts';
import type { EnclaveLink, LinkLog } from '../link/enclave-link.ts';
import { callPeer } from './peer-client.ts';
import type { PeerFetch } from './peer-client.ts';
import { MAX_PEER_DOCUMENT_BYTES, peerBytes, peerStatusFacts, statusFacts } from './peer-messages.ts';

/** Peers consulted per sync, however many discovery returns (bounds one round's work). */
export const MAX_PEERS = 64;

export interface ClusterSyncOptions {
  readonly link: EnclaveLink;
  /** Peer parents' cluster listener base URLs (configured, or discovered). */
  readonly peers: () => Promise<readonly string[]>;
  readonly intervalMs: number;
  /** Rotate a key once it is this old; undefined: never. */
  readonly rotateAfterMs?: number;
  readonly log: LinkLog;
  readonly fetch?: PeerFetch;
  readonly clock?: () => number;
}

/** What one sync did. */
export type SyncOutcome =
  | { readonly action: 'kept' }
  | { readonly action: 'fetched'; readonly peer: string }
  | { readonly action: 'rotated' }
  | { readonly action: 'failed'; readonly code: string };

export class ClusterSync {
  readonly #options: ClusterSyncOptions;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<SyncOutcome> | undefined;

  constructor(options: ClusterSyncOptions) {
    this.#options = options;
    // Before the link reports ready, so a new replica binds the fleet key in its first attestation.
    // The hook never fails: an unreachable fleet must not keep this instance from serving alone.
    options.link.onConnect(async () => {
      await this.sync();
    });
  }

  /** Starts the periodic sync. */
  start(): void {
    this.#timer = setInterval(() => void this.sync(), this.#options.intervalMs);
    this.#timer.unref();
  }

  close(): void {
    clearInterval(this.#timer);
  }

  /** One sync round; concurrent callers share the round in progress. */
  sync(): Promise<SyncOutcome> {
    this.#running ??= this.#round().finally(() => {
      this.#running = undefined;
    });
    return this.#running;
  }

  async #round(): Promise<SyncOutcome> {
    const { link, log } = this.#options;
    try {
      const own = statusFacts(await link.request('cluster.status', {}, { internal: true }));
      const candidates = await this.#candidatesAhead(own);
      for (const candidate of candidates) {
        try {
          await this.#exchange(candidate.peer);
          log('info', 'cluster.key_fetched', {
            peer: originOf(candidate.peer),
            epoch: candidate.facts.epoch,
          });
          return { action: 'fetched', peer: candidate.peer };
        } catch (error) {
          // A peer may have lied about its key or gone away: try the next one ahead.
          log('warn', 'cluster.exchange_failed', { peer: originOf(candidate.peer), code: codeOf(error) });
        }
      }
      const rotateAfter = this.#options.rotateAfterMs;
      const now = (this.#options.clock ?? Date.now)();
      if (rotateAfter !== undefined && now - own.createdAt >= rotateAfter) {
        await link.request('cluster.rotate', {}, { internal: true });
        log('info', 'cluster.key_rotated', { epoch: own.epoch + 1 });
        return { action: 'rotated' };
      }
      return candidates.length === 0
        ? { action: 'kept' }
        : { action: 'failed', code: 'ERR_CLUSTER_PEER_UNAVAILABLE' };
    } catch (error) {
      log('warn', 'cluster.sync_failed', { code: codeOf(error) });
      return { action: 'failed', code: codeOf(error) };
    }
  }

  /** Peers whose key ranks above `own`, best first. */
  async #candidatesAhead(own: ClusterKeyFacts): Promise<{ peer: string; facts: ClusterKeyFacts }[]> {
    const peers = [...new Set(await this.#options.peers())].slice(0, MAX_PEERS);
    const statuses = await Promise.allSettled(
      peers.map(async (peer) => ({
        peer,
        facts: peerStatusFacts(await callPeer(peer, '/cluster/v1/status', undefined, this.#options.fetch)),
      })),
    );
    return statuses
      .flatMap((result) => (result.status === 'fulfilled' ? [result.value] : []))
      .filter((candidate) => compareClusterKeys(candidate.facts, own) < 0)
      .sort((a, b) => compareClusterKeys(a.facts, b.facts));
  }

  /** Relays steps 1–4 of the exchange between the peer's enclave and ours. */
  async #exchange(peer: string): Promise<void> {
    const { link } = this.#options;
    const challenge = peerBytes(
      await callPeer(peer, '/cluster/v1/challenge', {}, this.#options.fetch),
      'challenge',
      32,
    );
    const request = await link.request('cluster.request', { challenge }, { internal: true });
    const document = request.get('document');
    if (!(document instanceof Uint8Array))
      throw new Error('the enclave answered cluster.request without a document');
    const shared = await callPeer(
      peer,
      '/cluster/v1/share',
      { document: Buffer.from(document).toString('base64') },
      this.#options.fetch,
    );
    await link.request(
      'cluster.accept',
      {
        document: peerBytes(shared, 'document', MAX_PEER_DOCUMENT_BYTES),
        enc: peerBytes(shared, 'enc', 32),
        ciphertext: peerBytes(shared, 'ciphertext', 256),
      },
      { internal: true },
    );
  }
}

function originOf(url: string): string {
  try {
    return new URL(url).origin;
  } catch {
    return '(invalid URL)';
  }
}

function codeOf(error: unknown): string {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : 'ERR_INTERNAL';
}
