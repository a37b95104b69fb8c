/**
 * A simulated Nitro Secure Module that behaves like the device: 32 SHA-384 PCRs (0–15 measured at
 * boot and locked), extend/lock semantics and error codes as the NSM's, and attestation documents in
 * the real byte format (untagged COSE_Sign1, ES384, the nine payload fields with `null` for absent
 * ones), signed by a leaf of the simulated PKI. The same verifier accepts them given the simulated
 * root, and rejects them under the AWS root.
 */
import { randomBytes, sign } from 'node:crypto';
import { encodeCbor } from '../../shared/cbor.ts';
import { ES384_PROTECTED_HEADER, signatureStructure } from '../../shared/attestation/index.ts';
import { NsmError } from '../../shared/errors.ts';
import type {
  AttestationRequest,
  Nsm,
  NsmDescription,
  NsmSigningIdentitySource,
  PcrDescription,
} from './nsm.ts';
import { NSM_FIRST_APPLICATION_PCR, NSM_MAX_INPUT_BYTES, NSM_PCR_COUNT, NSM_RANDOM_BYTES } from './nsm.ts';
import { PCR_BYTES, extendPcrValue } from './pcr.ts';

/** Options of {@link SimulatedNsm}. */
export interface SimulatedNsmOptions {
  /** Signs documents; the simulated PKI's `signingIdentitySource()`. */
  readonly identity: NsmSigningIdentitySource;
  /** e.g. `i-0123456789abcdef0-enc0123456789abcdef`. */
  readonly moduleId: string;
  /** Values of the boot-time PCRs (0–15) that are not zero: PCR0/1/2 from the code bundle. */
  readonly bootPcrs: ReadonlyMap<number, Uint8Array>;
  /** Milliseconds since the epoch; injectable for tests. */
  readonly clock?: () => number;
}

interface Register {
  value: Uint8Array;
  locked: boolean;
  /** Application PCRs appear in documents once they have been used, as on hardware. */
  used: boolean;
}

/** The simulated NSM. */
export class SimulatedNsm implements Nsm {
  readonly #identity: NsmSigningIdentitySource;
  readonly #moduleId: string;
  readonly #clock: () => number;
  readonly #registers: Register[];

  constructor(options: SimulatedNsmOptions) {
    this.#identity = options.identity;
    this.#moduleId = options.moduleId;
    this.#clock = options.clock ?? Date.now;
    this.#registers = Array.from({ length: NSM_PCR_COUNT }, (_, index) => {
      const boot = index < NSM_FIRST_APPLICATION_PCR;
      const value = options.bootPcrs.get(index) ?? new Uint8Array(PCR_BYTES);
      if (value.byteLength !== PCR_BYTES || (!boot && options.bootPcrs.has(index))) {
        throw new NsmError(
          'ERR_NSM_INVALID_ARGUMENT',
          `boot PCR${index} must be 0–15 and ${PCR_BYTES} bytes`,
        );
      }
      return { value: new Uint8Array(value), locked: boot, used: boot };
    });
  }

  async attest(request: AttestationRequest): Promise<Uint8Array> {
    for (const [name, field] of Object.entries(request) as [string, Uint8Array | undefined][]) {
      if (field !== undefined && field.byteLength > NSM_MAX_INPUT_BYTES) {
        throw new NsmError('ERR_NSM_INPUT_TOO_LARGE', `${name} exceeds ${NSM_MAX_INPUT_BYTES} bytes`);
      }
    }
    const now = this.#clock();
    const identity = this.#identity.signingIdentity(now);
    const pcrs = new Map<number, Uint8Array>();
    for (const [index, register] of this.#registers.entries()) {
      if (register.used) pcrs.set(index, register.value);
    }
    // Field order and `null` for absent fields follow the documents real NSMs produce.
    const payload = encodeCbor(
      new Map<string, unknown>([
        ['module_id', this.#moduleId],
        ['digest', 'SHA384'],
        ['timestamp', now],
        ['pcrs', pcrs],
        ['certificate', identity.certificate],
        ['cabundle', identity.cabundle],
        ['public_key', request.publicKey ?? null],
        ['user_data', request.userData ?? null],
        ['nonce', request.nonce ?? null],
      ]),
    );
    const signature = sign('sha384', signatureStructure(ES384_PROTECTED_HEADER, payload), {
      key: identity.privateKey,
      dsaEncoding: 'ieee-p1363',
    });
    return encodeCbor([ES384_PROTECTED_HEADER, new Map(), payload, new Uint8Array(signature)]);
  }

  async describePcr(index: number): Promise<PcrDescription> {
    const register = this.#register(index);
    return { locked: register.locked, data: new Uint8Array(register.value) };
  }

  async extendPcr(index: number, data: Uint8Array): Promise<Uint8Array> {
    const register = this.#register(index);
    if (register.locked) throw new NsmError('ERR_NSM_READ_ONLY_INDEX', `PCR${index} is locked`);
    if (data.byteLength > NSM_MAX_INPUT_BYTES) {
      throw new NsmError(
        'ERR_NSM_INPUT_TOO_LARGE',
        `PCR extension data exceeds ${NSM_MAX_INPUT_BYTES} bytes`,
      );
    }
    register.value = extendPcrValue(register.value, data);
    register.used = true;
    return new Uint8Array(register.value);
  }

  async lockPcr(index: number): Promise<void> {
    const register = this.#register(index);
    register.locked = true;
    register.used = true;
  }

  async lockPcrs(range: number): Promise<void> {
    if (!Number.isInteger(range) || range < 0 || range > NSM_PCR_COUNT) {
      throw new NsmError('ERR_NSM_INVALID_INDEX', `PCR range ${range} is outside 0–${NSM_PCR_COUNT}`);
    }
    for (let index = 0; index < range; index++) await this.lockPcr(index);
  }

  async getRandom(): Promise<Uint8Array> {
    return new Uint8Array(randomBytes(NSM_RANDOM_BYTES));
  }

  async describeNsm(): Promise<NsmDescription> {
    return {
      versionMajor: 1,
      versionMinor: 0,
      versionPatch: 0,
      moduleId: this.#moduleId,
      maxPcrs: NSM_PCR_COUNT,
      lockedPcrs: this.#registers.flatMap((register, index) => (register.locked ? [index] : [])),
      digest: 'SHA384',
    };
  }

  #register(index: number): Register {
    const register = Number.isInteger(index) ? this.#registers[index] : undefined;
    if (register === undefined)
      throw new NsmError('ERR_NSM_INVALID_INDEX', `PCR index ${index} is outside 0–31`);
    return register;
  }
}
