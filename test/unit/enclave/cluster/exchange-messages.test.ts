/**
 * The cluster exchange's `user_data` and payload codecs (enclave/cluster/exchange-messages.ts):
 * each decoder reads bytes a peer's parent relayed. Round trips give identical bytes, the expected
 * values are written out here (not computed by the encoder), and arbitrary bytes, truncations,
 * wrong purposes and non-canonical encodings fail only with ERR_CLUSTER_BINDING_MISMATCH.
 */
import { encode as encodeAny } from 'cbor2';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  decodeRequestBinding,
  decodeResponseBinding,
  decodeSharedKey,
  encodeRequestBinding,
  encodeResponseBinding,
} from '../../../../enclave/cluster/exchange-messages.ts';
import { encodeCbor } from '../../../../shared/cbor.ts';
import { isNitroInferError } from '../../../../shared/errors.ts';

const codeOf = (run: () => unknown) => {
  try {
    run();
    return 'ok';
  } catch (error) {
    return isNitroInferError(error) ? error.code : `untyped: ${String(error)}`;
  }
};

const key = new Uint8Array(32).fill(0x11);
const nonce = new Uint8Array(32).fill(0x22);

describe('cluster exchange bindings', () => {
  it('a request binding is the deterministic CBOR map written out by hand', () => {
    // {"v": 1, "purpose": "cluster-key-request", "exchangeKey": h'11'*32, "requestNonce": h'22'*32},
    // keys in CDE order (shorter encodings first).
    const expected = Buffer.concat([
      Buffer.from('a4', 'hex'),
      Buffer.from('6176', 'hex'),
      Buffer.from('01', 'hex'),
      Buffer.from('67', 'hex'),
      Buffer.from('purpose'),
      Buffer.from('73', 'hex'),
      Buffer.from('cluster-key-request'),
      Buffer.from('6b', 'hex'),
      Buffer.from('exchangeKey'),
      Buffer.from('5820', 'hex'),
      Buffer.from(key),
      Buffer.from('6c', 'hex'),
      Buffer.from('requestNonce'),
      Buffer.from('5820', 'hex'),
      Buffer.from(nonce),
    ]);
    expect(Buffer.from(encodeRequestBinding({ exchangeKey: key, requestNonce: nonce })).toString('hex')).toBe(
      expected.toString('hex'),
    );
    expect(decodeRequestBinding(new Uint8Array(expected))).toEqual({ exchangeKey: key, requestNonce: nonce });
  });

  it('each binding refuses the other purpose', () => {
    const request = encodeRequestBinding({ exchangeKey: key, requestNonce: nonce });
    const response = encodeResponseBinding({ keyConfig: new Uint8Array(41), sealedDigest: key });
    expect(codeOf(() => decodeResponseBinding(request))).toBe('ERR_CLUSTER_BINDING_MISMATCH');
    expect(codeOf(() => decodeRequestBinding(response))).toBe('ERR_CLUSTER_BINDING_MISMATCH');
    expect(codeOf(() => decodeResponseBinding(response))).toBe('ok');
  });

  it('a non-canonical encoding of the same map is refused (key order)', () => {
    const reordered = encodeCbor(
      new Map<string, unknown>([
        ['requestNonce', nonce],
        ['exchangeKey', key],
        ['purpose', 'cluster-key-request'],
        ['v', 1],
      ]),
    );
    expect(codeOf(() => decodeRequestBinding(reordered))).toBe('ERR_CLUSTER_BINDING_MISMATCH');
  });

  it('every truncated prefix, and a trailing byte, is refused', () => {
    const bytes = encodeRequestBinding({ exchangeKey: key, requestNonce: nonce });
    for (let length = 0; length < bytes.byteLength; length++) {
      expect(codeOf(() => decodeRequestBinding(bytes.subarray(0, length)))).toBe(
        'ERR_CLUSTER_BINDING_MISMATCH',
      );
    }
    const trailing = new Uint8Array([...bytes, 0]);
    expect(codeOf(() => decodeRequestBinding(trailing))).toBe('ERR_CLUSTER_BINDING_MISMATCH');
  });

  it('arbitrary bytes fail only with the typed code (fast-check)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        for (const decode of [decodeRequestBinding, decodeResponseBinding, decodeSharedKey]) {
          const code = codeOf(() => decode(bytes));
          expect(code === 'ok' || code === 'ERR_CLUSTER_BINDING_MISMATCH').toBe(true);
        }
      }),
      { interruptAfterTimeLimit: 2000, numRuns: 2000 },
    );
  });

  it('a sealed payload needs a 32-byte secret, a positive integer epoch and a time', () => {
    // Our encoder refuses floats; a hostile peer's payload may hold one, so cbor2 writes that.
    const payload = (epoch: unknown, secretBytes = 32) =>
      (typeof epoch === 'number' && !Number.isInteger(epoch) ? encodeAny : encodeCbor)(
        new Map<string, unknown>([
          ['v', 1],
          ['secret', new Uint8Array(secretBytes)],
          ['epoch', epoch],
          ['createdAt', 5],
        ]),
      );
    expect(decodeSharedKey(payload(1)).epoch).toBe(1);
    for (const bad of [payload(0), payload(1.5), payload('1'), payload(1, 31)]) {
      expect(codeOf(() => decodeSharedKey(bad))).toBe('ERR_CLUSTER_BINDING_MISMATCH');
    }
  });
});
