/**
 * The enclave's current OHTTP key: its key config (bound in every attestation) and the gateway
 * that opens requests sealed to it. Starts with the enclave's own ephemeral key; a cluster key
 * (DESIGN.md 7), unsealed through KMS like a model, can replace it so that every replica binds the
 * same key config.
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

export class OhttpKeys {
  #keyConfig: Uint8Array;
  #gateway: OhttpGateway;
  #receipts: ReceiptKey;

  private constructor(keyConfig: Uint8Array, gateway: OhttpGateway, receipts: ReceiptKey) {
    this.#keyConfig = keyConfig;
    this.#gateway = gateway;
    this.#receipts = receipts;
  }

  /** From an X25519 KeyObject with its encoded key config, and the receipt key. */
  static async fromKeyObject(
    keyConfig: Uint8Array,
    privateKey: KeyObject,
    receipts: ReceiptKey,
  ): Promise<OhttpKeys> {
    const raw = rawPrivateKey(privateKey);
    try {
      return new OhttpKeys(keyConfig, await OhttpGateway.create(decodeKeyConfig(keyConfig), raw), receipts);
    } finally {
      raw.fill(0);
    }
  }

  /** The key receipts are signed with (bound in `user_data`). */
  get receipts(): ReceiptKey {
    return this.#receipts;
  }

  /** The key config clients encrypt to (bound in `user_data`). */
  get keyConfig(): Uint8Array {
    return this.#keyConfig;
  }

  /** Replaces both keys (the cluster's); `privateKeyRaw` is wiped by the caller. */
  async install(keyConfig: Uint8Array, privateKeyRaw: Uint8Array, receipts: ReceiptKey): Promise<void> {
    const gateway = await OhttpGateway.create(decodeKeyConfig(keyConfig), privateKeyRaw);
    this.#keyConfig = keyConfig;
    this.#gateway = gateway;
    this.#receipts = receipts;
  }

  decapsulate(encapsulated: Uint8Array): Promise<DecapsulatedRequest> {
    return this.#gateway.decapsulate(encapsulated);
  }
}

/** The raw 32-byte X25519 secret of a KeyObject (its JWK `d`), in a buffer the caller wipes. */
function rawPrivateKey(key: KeyObject): Uint8Array {
  const d = key.export({ format: 'jwk' }).d;
  if (d === undefined) throw new Error('not a private key');
  return new Uint8Array(Buffer.from(d, 'base64url'));
}
