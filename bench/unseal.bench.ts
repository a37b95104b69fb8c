/**
 * Model load time: a ≥100 MB model unsealed inside the enclave (stream the sealed artifact, attested
 * KMS Decrypt through the forwarder, Encryption SDK decrypt + authenticate, SHA-384 check, session
 * create) against the physical limit: reading the plain file and creating the session directly.
 *
 * The sealed load is driven by a separate uploader process (bench/upload-client.ts), as the parent
 * would; "unseal only" feeds the same artifact to the enclave's unsealer in-process.
 *
 * Run: npm run bench:unseal   (MODEL_MB to change the size; writes bench/results/unseal.json)
 */
import { createReadStream } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
// Before onnxruntime-node: its telemetry off (enclave/inference/onnxruntime-env.ts).
import '../enclave/inference/onnxruntime-env.ts';
import ort from 'onnxruntime-node';
import { unsealModel } from '../enclave/models/unseal.ts';
import { denseLayerModel } from '../sim/onnx-builder.ts';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { startBenchStack } from './harness.ts';
import { environment, peakRssMiB, summarize, writeResult } from './stats.ts';

const MODEL_MB = Number(process.env.MODEL_MB ?? 100);
const REPEATS = Number(process.env.REPEATS ?? 3);
const CHUNK_BYTES = 1024 * 1024;
const UPLOAD_CLIENT = fileURLToPath(new URL('./upload-client.ts', import.meta.url));
const run = promisify(execFile);

const side = Math.round(Math.sqrt((MODEL_MB * 1024 * 1024) / 4));
const weights = new Float32Array(side * side);
for (let index = 0; index < weights.length; index++)
  weights[index] = ((index * 2654435761) % 1000) / 1000 - 0.5;
const model = denseLayerModel('large', weights, new Float32Array(side));
const megabytes = model.byteLength / (1024 * 1024);

const stack = await startBenchStack({ memoryBudgetBytes: 4 * model.byteLength, workers: 1 });
const plainFile = path.join(stack.directory, 'large.onnx');
const sealedFile = path.join(stack.directory, 'large.sealed');
await writeFile(plainFile, model);
const artifact = await stack.seal('large', model);
await writeFile(sealedFile, artifact);

const plain: number[] = [];
const decryptOnly: number[] = [];
const linked: number[] = [];
for (let round = 0; round < REPEATS; round++) {
  let start = process.hrtime.bigint();
  const session = await ort.InferenceSession.create(await readFile(plainFile), { intraOpNumThreads: 1 });
  plain.push(Number(process.hrtime.bigint() - start) / 1e6);
  await session.release();

  start = process.hrtime.bigint();
  const unsealed = await unsealModel({
    ciphertext: createReadStream(sealedFile, { highWaterMark: CHUNK_BYTES }),
    ciphertextBytes: artifact.byteLength,
    decrypt: stack.decrypt,
    output: { view: new Uint8Array(artifact.byteLength), written: 0 },
  });
  decryptOnly.push(Number(process.hrtime.bigint() - start) / 1e6);
  unsealed.plaintext.fill(0);

  // The uploader runs in its own process, as the parent does.
  const { stdout } = await run(process.execPath, [
    '--import',
    'tsx',
    UPLOAD_CLIENT,
    stack.socketPath,
    'large',
    sealedFile,
  ]);
  linked.push((JSON.parse(stdout) as { elapsedMs: number }).elapsedMs);
  await stack.service.models.unload('large');
}
await stack.close();

const plainMs = summarize(plain).p50Ms;
const linkedMs = summarize(linked).p50Ms;
const decryptMs = summarize(decryptOnly).p50Ms;
const result = {
  subject: 'model unseal',
  environment: environment(),
  modelMegabytes: Math.round(megabytes * 10) / 10,
  repeats: REPEATS,
  plainReadAndCreateMs: plainMs,
  unsealOnlyMs: decryptMs,
  unsealOnlyMegabytesPerSecond: Math.round(megabytes / (decryptMs / 1000)),
  sealedLoadThroughLinkMs: linkedMs,
  sealedLoadMegabytesPerSecond: Math.round(megabytes / (linkedMs / 1000)),
  addedOverPlain: `${Math.round((linkedMs / plainMs - 1) * 100)}%`,
  peakRssMiB: peakRssMiB(),
};
writeResult('unseal', result);
console.log(
  `model unseal — ${result.modelMegabytes} MB model, ${environment().cpu}, Node ${process.version}`,
);
console.log('| path | p50 ms | MB/s |');
console.log('|---|---:|---:|');
console.log(
  `| plain file read + session create (limit) | ${plainMs} | ${Math.round(megabytes / (plainMs / 1000))} |`,
);
console.log(
  `| unseal only (attested KMS + decrypt + SHA-384) | ${decryptMs} | ${result.unsealOnlyMegabytesPerSecond} |`,
);
console.log(
  `| sealed load through the link (stream + unseal + session create) | ${linkedMs} | ${result.sealedLoadMegabytesPerSecond} |`,
);
console.log(`added over plain: ${result.addedOverPlain}; peak RSS ${result.peakRssMiB} MiB`);
