/**
 * The enclave's current OHTTP key: its key config (bound in every attestation) and the gateway
 * that opens requests sealed to it, with the receipt key that signs answers to them. The key is a
 * cluster key (DESIGN.md 7) generated inside an enclave or received from an attested peer
 * (`enclave/cluster/`); after a rotation the previous key keeps opening requests for a short grace
 * period, so clients that attested just before the rotation are not refused mid-flight.
 */
import type { KeyObject } from 'node:crypto';
import { OhttpGateway } from '../../shared/ohttp/encapsulation.ts';
import type { DecapsulatedRequest } from '../../shared/ohttp/encapsulation.ts';
import { decodeKeyConfig } from '../../shared/ohttp/key-config.ts';

/** A receipt signing key: the private half and its raw public key. */
export interface ReceiptKey {
  readonly privateKey: KeyObject;
  readonly publicKeyRaw: Uint8Array;
}

/** A decapsulated request with the key config and receipt key of the key that opened it. */
export interface OpenedRequest extends DecapsulatedRequest {
  readonly keyConfig: Uint8Array;
  readonly receipts: ReceiptKey;
}

interface Entry {
  readonly keyId: number;
  readonly keyConfig: Uint8Array;
  readonly gateway: OhttpGateway;
  readonly receipts: ReceiptKey;
}

export class OhttpKeys {
  #current: Entry;
  #previous: { readonly entry: Entry; readonly until: number } | undefined;
  readonly #clock: () => number;

  private constructor(current: Entry, clock: () => number) {
    this.#current = current;
    this.#clock = clock;
  }

  /** From a raw X25519 secret (wiped by the caller) with its encoded key config, and the receipt key. */
  static async create(
    keyConfig: Uint8Array,
    privateKeyRaw: Uint8Array,
    receipts: ReceiptKey,
    clock: () => number = Date.now,
  ): Promise<OhttpKeys> {
    return new OhttpKeys(await entry(keyConfig, privateKeyRaw, receipts), clock);
  }

  /** The key receipts are signed with (bound in `user_data`). */
  get receipts(): ReceiptKey {
    return this.#current.receipts;
  }

  /** The key config clients encrypt to (bound in `user_data`). */
  get keyConfig(): Uint8Array {
    return this.#current.keyConfig;
  }

  /**
   * Replaces the current key; `privateKeyRaw` is wiped by the caller. With `keepPreviousUntil` the
   * replaced key still opens requests until then — unless both share a key id, since requests name
   * their key by that one byte alone (then the previous key is dropped at once).
   */
  async install(
    keyConfig: Uint8Array,
    privateKeyRaw: Uint8Array,
    receipts: ReceiptKey,
    keepPreviousUntil?: number,
  ): Promise<void> {
    const next = await entry(keyConfig, privateKeyRaw, receipts);
    const previous = this.#current;
    this.#current = next;
    this.#previous =
      keepPreviousUntil !== undefined && previous.keyId !== next.keyId
        ? { entry: previous, until: keepPreviousUntil }
        : undefined;
  }

  /** Opens a request with the key its key id names (the current one, or the previous in its grace period). */
  async decapsulate(encapsulated: Uint8Array): Promise<OpenedRequest> {
    const previous = this.#previous;
    let chosen = this.#current;
    if (previous !== undefined) {
      if (this.#clock() > previous.until) this.#previous = undefined;
      else if (encapsulated[0] === previous.entry.keyId) chosen = previous.entry;
    }
    const request = await chosen.gateway.decapsulate(encapsulated);
    return { ...request, keyConfig: chosen.keyConfig, receipts: chosen.receipts };
  }
}

async function entry(keyConfig: Uint8Array, privateKeyRaw: Uint8Array, receipts: ReceiptKey): Promise<Entry> {
  const config = decodeKeyConfig(keyConfig);
  return {
    keyId: config.keyId,
    keyConfig,
    gateway: await OhttpGateway.create(config, privateKeyRaw),
    receipts,
  };
}
