/**
 * The real gateway (real HPKE, Binary HTTP, replay window) over a real inference pool holding the
 * Identity model of every datatype (identity-models.ts), for the binary tensor tests: start it,
 * send infer bodies through OHTTP, build binary bodies by hand, and compare against direct
 * onnxruntime-node runs on the same samples.
 */
import ort from 'onnxruntime-node';
import type { ClientTensor } from '../../client/tensors.ts';
import { ClusterKeyring } from '../../enclave/cluster/cluster-keyring.ts';
import { InferenceGateway } from '../../enclave/gateway/inference-gateway.ts';
import { ReplayWindow } from '../../enclave/gateway/replay-window.ts';
import { InferencePool } from '../../enclave/inference/pool.ts';
import type { ModelManager } from '../../enclave/models/model-manager.ts';
import { binaryBodyPieces, encodeBytesElements, rawBytesOf } from '../../shared/inference/binary-tensor.ts';
import { V2_TO_ONNX_TYPE } from '../../shared/inference/v2.ts';
import type { V2Datatype } from '../../shared/inference/v2.ts';
import { decodeBhttpResponse, encodeBhttpRequest } from '../../shared/ohttp/bhttp.ts';
import type { BhttpResponse, Field } from '../../shared/ohttp/bhttp.ts';
import { encapsulateRequest } from '../../shared/ohttp/encapsulation.ts';
import { decodeKeyConfig } from '../../shared/ohttp/key-config.ts';
import { ALL_DATATYPES, identityModel } from './identity-models.ts';

export const MODEL = { name: 'identity', sha384: 'cd'.repeat(48) };

/** Values at the edges of each datatype: extremes, NaN payloads, -0, subnormals, non-ASCII text. */
export const SAMPLES: Record<V2Datatype, ClientTensor['data']> = {
  BOOL: new Uint8Array([1, 0, 1]),
  UINT8: new Uint8Array([0, 255, 7]),
  INT8: new Int8Array([-128, 127, 0]),
  UINT16: new Uint16Array([0, 65535, 1]),
  INT16: new Int16Array([-32768, 32767, -1]),
  UINT32: new Uint32Array([0, 2 ** 32 - 1, 5]),
  INT32: new Int32Array([-(2 ** 31), 2 ** 31 - 1, 0]),
  UINT64: new BigUint64Array([0n, 2n ** 64n - 1n, 5n]),
  INT64: new BigInt64Array([-(2n ** 63n), 2n ** 63n - 1n, 0n]),
  // 1.0, a NaN with a payload, the smallest subnormal.
  FP16: new Uint16Array([0x3c00, 0x7e01, 0x0001]),
  FP32: new Float32Array(new Uint32Array([0x7fc00001, 0x80000000, 0x00000001]).buffer),
  FP64: new Float64Array([Number.MIN_VALUE, -0, Math.PI]),
  BYTES: ['', 'héllo ✓', 'a\tb'],
};

export const tensorOf = (datatype: V2Datatype): ClientTensor => ({
  name: `x_${datatype}`,
  datatype,
  shape: [3],
  data: SAMPLES[datatype],
});

/** A running gateway and what a test needs to talk to it. */
export interface BinaryGateway {
  readonly pool: InferencePool;
  readonly keyConfigBytes: Uint8Array;
  readonly receiptKey: Uint8Array;
  /** Outputs of the direct run on SAMPLES, by output name. */
  readonly direct: Readonly<Record<string, ort.Tensor>>;
  /** Sends one infer request through OHTTP; resolves with the decrypted inner response. */
  send(headers: readonly Field[], content: Uint8Array): Promise<BhttpResponse>;
  close(): Promise<void>;
}

export async function startBinaryGateway(): Promise<BinaryGateway> {
  const { ohttpKeys } = await ClusterKeyring.generate(Date.now);
  const pool = new InferencePool({ size: 1 });
  const metadata = await pool.load(MODEL.name, identityModel());
  const models = { list: () => [{ identity: MODEL, metadata, sizeBytes: 1 }] } as unknown as ModelManager;
  const gateway = new InferenceGateway({
    keys: ohttpKeys,
    pool,
    models,
    replay: new ReplayWindow({ windowMs: 60_000, capacity: 4096, clock: Date.now }),
  });
  const keyConfig = decodeKeyConfig(ohttpKeys.keyConfig);
  // The reference: the same model run directly, on the same values.
  const session = await ort.InferenceSession.create(identityModel());
  const direct = await session.run(
    Object.fromEntries(
      ALL_DATATYPES.map((datatype) => [
        `x_${datatype}`,
        new ort.Tensor(V2_TO_ONNX_TYPE[datatype], SAMPLES[datatype] as never, [3]),
      ]),
    ),
  );
  await session.release();
  return {
    pool,
    keyConfigBytes: ohttpKeys.keyConfig,
    receiptKey: ohttpKeys.receipts.publicKeyRaw,
    direct,
    async send(headers, content) {
      const message = encodeBhttpRequest({
        method: 'POST',
        scheme: 'https',
        authority: '',
        path: `/v2/models/${MODEL.name}/infer`,
        headers: [['date', new Date().toUTCString()], ...headers],
        content,
        trailers: [],
      });
      const { encapsulated, opener } = await encapsulateRequest(keyConfig, message);
      return decodeBhttpResponse(opener.open(await gateway.handle(encapsulated)));
    },
    close: () => pool.close(),
  };
}

export const codeIn = (response: BhttpResponse) =>
  (JSON.parse(new TextDecoder().decode(response.content)) as { code?: string }).code;

/** Bytes of an output as the wire carries them (BYTES length-prefixed), to compare bit for bit. */
export function wireBytes(datatype: V2Datatype, data: unknown): Uint8Array {
  if (datatype === 'BYTES') return encodeBytesElements(data as string[]);
  return rawBytesOf(data as ArrayBufferView);
}

/** A binary body built by hand: `header` as JSON, then `blobs`, with the length the header field says. */
export function body(header: unknown, blobs: Uint8Array[]): { headers: Field[]; content: Uint8Array } {
  const { pieces, headerLength } = binaryBodyPieces(header, blobs);
  return {
    headers: [
      ['content-type', 'application/octet-stream'],
      ['inference-header-content-length', String(headerLength)],
    ],
    content: new Uint8Array(Buffer.concat(pieces)),
  };
}
