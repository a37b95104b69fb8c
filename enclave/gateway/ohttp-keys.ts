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

export class OhttpKeys {
  #keyConfig: Uint8Array;
  #gateway: OhttpGateway;

  private constructor(keyConfig: Uint8Array, gateway: OhttpGateway) {
    this.#keyConfig = keyConfig;
    this.#gateway = gateway;
  }

  /** From an X25519 KeyObject and its encoded key config. */
  static async fromKeyObject(keyConfig: Uint8Array, privateKey: KeyObject): Promise<OhttpKeys> {
    const raw = rawPrivateKey(privateKey);
    try {
      return new OhttpKeys(keyConfig, await OhttpGateway.create(decodeKeyConfig(keyConfig), raw));
    } finally {
      raw.fill(0);
    }
  }

  /** The key config clients encrypt to (bound in `user_data`). */
  get keyConfig(): Uint8Array {
    return this.#keyConfig;
  }

  /** Replaces the key (the cluster key); `privateKeyRaw` is wiped by the caller. */
  async install(keyConfig: Uint8Array, privateKeyRaw: Uint8Array): Promise<void> {
    const gateway = await OhttpGateway.create(decodeKeyConfig(keyConfig), privateKeyRaw);
    this.#keyConfig = keyConfig;
    this.#gateway = gateway;
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
