/**
 * The enclave's cluster key and what it serves with: the secret (kept only in this process's
 * memory, to share with attested peers), its public facts, and the OHTTP keys derived from it. At
 * start-up the enclave generates its own key, so a lone instance serves at once and a fleet whose
 * every enclave is gone starts afresh with a key no one outside knows (clients re-attest on the
 * unknown key id, as they already do). A key arrives from outside only through `install`, which the
 * attested peer exchange alone calls.
 */
import { timingSafeEqual } from 'node:crypto';
import { compareClusterKeys } from '../../shared/cluster-preference.ts';
import type { ClusterKeyFacts } from '../../shared/cluster-preference.ts';
import { ClusterError } from '../../shared/errors.ts';
import { OhttpKeys } from '../gateway/ohttp-keys.ts';
import { deriveClusterKeys, generateClusterSecret } from './cluster-secret.ts';
import type { ClusterKeyMetadata } from './cluster-secret.ts';
import type { SharedClusterKey } from './exchange-messages.ts';

/**
 * How long a replaced key still opens requests: long enough for requests sealed just before a
 * rotation or a convergence switch to arrive (the SDK re-attests on the next unknown key id), short
 * enough that a retired key does not linger. It is the enclave's constant, not the parent's, so an
 * untrusted parent cannot keep old keys alive.
 */
export const PREVIOUS_KEY_GRACE_MS = 5 * 60_000;

/** What `cluster.status` reports: public facts only. */
export interface ClusterKeyStatus extends ClusterKeyFacts {
  readonly keyConfig: Uint8Array;
}

interface Current extends ClusterKeyMetadata {
  readonly secret: Uint8Array;
  readonly keyConfig: Uint8Array;
  readonly fingerprint: Uint8Array;
}

export class ClusterKeyring {
  readonly ohttpKeys: OhttpKeys;
  readonly #clock: () => number;
  #current: Current;

  private constructor(ohttpKeys: OhttpKeys, current: Current, clock: () => number) {
    this.ohttpKeys = ohttpKeys;
    this.#current = current;
    this.#clock = clock;
  }

  /** A keyring holding a key generated here, epoch 1. */
  static async generate(clock: () => number = Date.now): Promise<ClusterKeyring> {
    const secret = generateClusterSecret();
    const derived = deriveClusterKeys(secret);
    try {
      const ohttpKeys = await OhttpKeys.create(
        derived.keyConfig,
        derived.ohttpSecret,
        receiptKey(derived),
        clock,
      );
      return new ClusterKeyring(
        ohttpKeys,
        {
          secret,
          epoch: 1,
          createdAt: clock(),
          keyConfig: derived.keyConfig,
          fingerprint: derived.fingerprint,
        },
        clock,
      );
    } finally {
      derived.ohttpSecret.fill(0);
    }
  }

  status(): ClusterKeyStatus {
    const { epoch, createdAt, fingerprint, keyConfig } = this.#current;
    return { epoch, createdAt, fingerprint, keyConfig };
  }

  /** The current key for sealing to an attested peer, as a copy of the secret that the caller wipes. */
  sharable(): SharedClusterKey & { readonly keyConfig: Uint8Array } {
    const { secret, epoch, createdAt, keyConfig } = this.#current;
    return { secret: new Uint8Array(secret), epoch, createdAt, keyConfig };
  }

  /** Replaces the key with a new one generated here, one epoch higher; the old one opens requests for the grace period. */
  async rotate(): Promise<ClusterKeyStatus> {
    await this.#replace({
      secret: generateClusterSecret(),
      epoch: this.#current.epoch + 1,
      createdAt: this.#clock(),
    });
    return this.status();
  }

  /**
   * Installs a key a genuine peer sealed to this enclave. `boundKeyConfig` is what the peer's
   * document binds: the derived key config must equal it. A key this enclave already holds is a
   * no-op; one less preferred than its own is refused, so a parent cannot walk replicas back to an
   * older key.
   * @throws {ClusterError} `ERR_CLUSTER_BINDING_MISMATCH`, `ERR_CLUSTER_KEY_NOT_PREFERRED`.
   */
  async install(shared: SharedClusterKey, boundKeyConfig: Uint8Array): Promise<ClusterKeyStatus> {
    const derived = deriveClusterKeys(shared.secret);
    derived.ohttpSecret.fill(0);
    if (
      derived.keyConfig.byteLength !== boundKeyConfig.byteLength ||
      !timingSafeEqual(derived.keyConfig, boundKeyConfig)
    ) {
      throw new ClusterError(
        'ERR_CLUSTER_BINDING_MISMATCH',
        'the shared key does not derive the key config the peer document binds',
      );
    }
    const order = compareClusterKeys({ ...shared, fingerprint: derived.fingerprint }, this.#current);
    if (order === 0) return this.status();
    if (order > 0) {
      throw new ClusterError(
        'ERR_CLUSTER_KEY_NOT_PREFERRED',
        `the peer's key (epoch ${shared.epoch}) ranks below this enclave's (epoch ${this.#current.epoch})`,
      );
    }
    await this.#replace(shared);
    return this.status();
  }

  async #replace(next: SharedClusterKey): Promise<void> {
    const derived = deriveClusterKeys(next.secret);
    try {
      await this.ohttpKeys.install(
        derived.keyConfig,
        derived.ohttpSecret,
        receiptKey(derived),
        this.#clock() + PREVIOUS_KEY_GRACE_MS,
      );
    } finally {
      derived.ohttpSecret.fill(0);
    }
    const previous = this.#current;
    this.#current = {
      secret: new Uint8Array(next.secret),
      epoch: next.epoch,
      createdAt: next.createdAt,
      keyConfig: derived.keyConfig,
      fingerprint: derived.fingerprint,
    };
    // The old secret is no longer shared; its derived gateway key lives on only for the grace period.
    previous.secret.fill(0);
  }
}

function receiptKey(derived: ReturnType<typeof deriveClusterKeys>) {
  return { privateKey: derived.receiptPrivateKey, publicKeyRaw: derived.receiptPublicKey };
}
