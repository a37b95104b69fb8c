/**
 * An inference worker thread: holds ONNX Runtime sessions and runs them, so `run()` (which blocks
 * its thread) never blocks the enclave's event loop. Model bytes arrive in a buffer moved here from
 * the pool and moved back once the session is built; the last worker to get them overwrites them.
 */
import { parentPort } from 'node:worker_threads';
import ort from 'onnxruntime-node';
import { tensorMetadata } from '../../shared/inference/v2-tensors.ts';
import type { FlatTensor, V2ModelMetadata } from '../../shared/inference/v2.ts';
import type { WorkerRequest, WorkerResponse } from './worker-protocol.ts';

const port = parentPort;
if (port === null) throw new Error('the inference worker must run in a worker thread');

const sessions = new Map<string, ort.InferenceSession>();

function reply(message: WorkerResponse, transfer: ArrayBuffer[] = []): void {
  port!.postMessage(message, transfer);
}

async function load(
  name: string,
  buffer: ArrayBuffer,
  model: Uint8Array,
  wipe: boolean,
  intraOpThreads: number,
): Promise<void> {
  let session: ort.InferenceSession;
  try {
    session = await ort.InferenceSession.create(model, {
      intraOpNumThreads: intraOpThreads,
      interOpNumThreads: 1,
      executionMode: 'sequential',
    });
  } catch {
    // ONNX Runtime's message may quote model content; report only that it failed.
    if (wipe) model.fill(0);
    reply(
      {
        op: 'failed',
        name,
        buffer,
        code: 'ERR_MODEL_INVALID',
        message: 'ONNX Runtime could not build a session from the model',
      },
      [buffer],
    );
    return;
  }
  if (wipe) model.fill(0);
  let metadata: V2ModelMetadata;
  try {
    metadata = {
      name,
      platform: 'onnx_onnxv1',
      inputs: session.inputMetadata.map((input) =>
        tensorMetadata(
          input.name,
          input.isTensor ? input.type : 'unsupported',
          input.isTensor ? input.shape : [],
        ),
      ),
      outputs: session.outputMetadata.map((output) =>
        tensorMetadata(
          output.name,
          output.isTensor ? output.type : 'unsupported',
          output.isTensor ? output.shape : [],
        ),
      ),
    };
  } catch (error) {
    await session.release();
    reply({ op: 'failed', name, buffer, code: 'ERR_MODEL_INVALID', message: (error as Error).message }, [
      buffer,
    ]);
    return;
  }
  await warmUp(session, metadata);
  await sessions.get(name)?.release();
  sessions.set(name, session);
  reply({ op: 'loaded', name, metadata, buffer }, [buffer]);
}

/** One run on zeros (dynamic dimensions as 1) so the first real request does not pay for allocation. */
async function warmUp(session: ort.InferenceSession, metadata: V2ModelMetadata): Promise<void> {
  try {
    const feeds: Record<string, ort.Tensor> = {};
    for (const input of metadata.inputs) {
      const dims = input.shape.map((dimension) => (dimension < 0 ? 1 : dimension));
      const size = dims.reduce((product, dimension) => product * dimension, 1);
      const type = input.datatype === 'FP32' ? 'float32' : input.datatype === 'INT64' ? 'int64' : undefined;
      if (type === undefined) return;
      feeds[input.name] = new ort.Tensor(
        type,
        type === 'int64' ? new BigInt64Array(size) : new Float32Array(size),
        dims,
      );
    }
    await session.run(feeds);
  } catch {
    // Some models reject the smallest shapes (e.g. convolutions); warm-up is only an optimisation.
  }
}

async function run(
  requestId: number,
  name: string,
  inputs: readonly FlatTensor[],
  outputNames?: readonly string[],
): Promise<void> {
  const session = sessions.get(name);
  if (session === undefined) {
    reply({ op: 'failed', requestId, code: 'ERR_MODEL_NOT_FOUND', message: `model ${name} is not loaded` });
    return;
  }
  let results: ort.InferenceSession.ReturnType;
  try {
    const feeds: Record<string, ort.Tensor> = {};
    for (const input of inputs)
      feeds[input.name] = new ort.Tensor(input.type, input.data as never, input.dims);
    results =
      outputNames === undefined || outputNames.length === 0
        ? await session.run(feeds)
        : await session.run(feeds, [...outputNames]);
  } catch {
    reply({
      op: 'failed',
      requestId,
      code: 'ERR_INFERENCE_FAILED',
      message: `ONNX Runtime failed to run model ${name}`,
    });
    return;
  }
  const outputs: FlatTensor[] = [];
  // Each output's buffer is moved back, not cloned; a Set, since a buffer listed twice is a
  // DataCloneError. String tensors (BYTES) are plain arrays and are cloned.
  const transfer = new Set<ArrayBuffer>();
  for (const [outputName, tensor] of Object.entries(results)) {
    const data = tensor.data as unknown as ArrayBufferView | string[];
    outputs.push({ name: outputName, type: tensor.type as FlatTensor['type'], dims: [...tensor.dims], data });
    if (!Array.isArray(data) && data.buffer instanceof ArrayBuffer) transfer.add(data.buffer);
  }
  reply({ op: 'result', requestId, outputs }, [...transfer]);
}

/**
 * Test builds only: a worker that runs the model named here exits, as a crash in a session would,
 * so tests can show that a dead worker is replaced and its models come back. The variable is part
 * of the image's measured environment; the parent cannot set it.
 */
const EXIT_ON_MODEL = process.env.NITRO_INFER_TEST_WORKER_EXIT_ON_MODEL;

/**
 * Test builds only, like the hook above: `<model>:<ms>` makes every run of that model wait `ms`
 * first, so tests can hold an inference in flight (a drain finishing it after SIGTERM).
 */
const DELAY_ON_MODEL = /^([^:]+):(\d{1,6})$/.exec(process.env.NITRO_INFER_TEST_WORKER_DELAY_ON_MODEL ?? '');

port.on('message', (message: WorkerRequest) => {
  switch (message.op) {
    case 'load':
      void load(
        message.name,
        message.buffer,
        new Uint8Array(message.buffer, message.byteOffset, message.byteLength),
        message.wipe,
        message.intraOpThreads,
      );
      break;
    case 'unload':
      // The answer waits for the release, so the pool returns the memory to the budget only once
      // ONNX Runtime has freed it.
      void (async () => {
        const session = sessions.get(message.name);
        sessions.delete(message.name);
        await session?.release().catch(() => {});
        reply({ op: 'unloaded', name: message.name });
      })();
      break;
    case 'run':
      if (EXIT_ON_MODEL !== undefined && message.name.startsWith(`${EXIT_ON_MODEL}@`)) process.exit(70);
      if (DELAY_ON_MODEL !== null && message.name.startsWith(`${DELAY_ON_MODEL[1]}@`)) {
        setTimeout(
          () => void run(message.requestId, message.name, message.inputs, message.outputNames),
          Number(DELAY_ON_MODEL[2]),
        );
        break;
      }
      void run(message.requestId, message.name, message.inputs, message.outputNames);
      break;
  }
});
