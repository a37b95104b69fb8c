/**
 * Which of two genuine cluster keys a fleet converges on (docs/protocols.md "Cluster key",
 * convergence). Parents compare the public facts their enclaves report and make the enclave with
 * the less preferred key fetch the preferred one from its holder; enclaves refuse to be moved to a
 * less preferred key. Every candidate key was made inside an attested enclave, so whoever picks the
 * order chooses only among genuine keys: availability, never confidentiality.
 */

/** Public facts about a cluster key, as `cluster.status` reports them. */
export interface ClusterKeyFacts {
  /** Bumped by each rotation. */
  readonly epoch: number;
  /** When the generating enclave made the key, epoch milliseconds. */
  readonly createdAt: number;
  /** SHA-256 of the key config. */
  readonly fingerprint: Uint8Array;
}

/**
 * Orders keys by preference: higher epoch first (a rotation wins), then earlier creation (the key
 * most replicas already hold when two start at once), then lower fingerprint (a total order, so
 * two parents can never each prefer the other's key).
 * @returns a negative number when `a` is preferred, positive when `b` is, 0 for the same key.
 */
export function compareClusterKeys(a: ClusterKeyFacts, b: ClusterKeyFacts): number {
  if (a.epoch !== b.epoch) return b.epoch - a.epoch;
  if (a.createdAt !== b.createdAt) return a.createdAt - b.createdAt;
  return Buffer.compare(Buffer.from(a.fingerprint), Buffer.from(b.fingerprint));
}
