/**
 * Workers that come back: a worker that dies (here: the test build's worker exits when it runs the
 * model named in NITRO_INFER_TEST_WORKER_EXIT_ON_MODEL) is replaced with backoff, the models it held
 * are reported lost until restored from a fresh copy, the other workers serve meanwhile, and a slot
 * that keeps dying is given up after MAX_WORKER_RESTARTS.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { InferencePool, MAX_WORKER_RESTARTS } from '../../../enclave/inference/pool.ts';
import type { PoolLog } from '../../../enclave/inference/pool.ts';
import type { V2InferenceRequest } from '../../../shared/inference/v2.ts';
import { denseLayerModel } from '../../../sim/onnx-builder.ts';
import { codeOfAsync } from '../../helpers/codes.ts';

const dense = () => denseLayerModel('dense', Float32Array.from([1, 2, 3, 4, 5, 6]), new Float32Array(3));
const request: V2InferenceRequest = {
  inputs: [{ name: 'X', datatype: 'FP32', shape: [1, 2], data: [1, 1] }],
};
const pools: InferencePool[] = [];

function start(size: number): { pool: InferencePool; events: string[] } {
  const events: string[] = [];
  const log: PoolLog = (_level, event) => events.push(event);
  const pool = new InferencePool({ size, log });
  pools.push(pool);
  return { pool, events };
}

/** Resolves once `condition` holds, checked on every change the pool reports. */
function changed(pool: InferencePool, condition: () => boolean): Promise<void> {
  return new Promise((resolve) => {
    if (condition()) return resolve();
    const stop = pool.onChange(() => {
      if (condition()) {
        stop();
        resolve();
      }
    });
  });
}

/** A caller's own bytes, moved through the workers like the budget's leases. */
function bytes(model: Uint8Array) {
  let view = model;
  return {
    get view() {
      return view;
    },
    lend: () => view.buffer as ArrayBuffer,
    restore: (buffer: ArrayBuffer) => {
      view = new Uint8Array(buffer, 0, model.byteLength);
    },
    lost: () => {},
  };
}

beforeAll(() => {
  // Workers copy the environment when they start: set before any pool exists.
  process.env.NITRO_INFER_TEST_WORKER_EXIT_ON_MODEL = 'poison';
});
afterEach(async () => {
  await Promise.all(pools.splice(0).map((pool) => pool.close()));
});
afterAll(() => {
  delete process.env.NITRO_INFER_TEST_WORKER_EXIT_ON_MODEL;
});

describe('InferencePool worker replacement', () => {
  it('replaces a dead worker, serves from the others meanwhile, and reports what it lost', async () => {
    const { pool, events } = start(2);
    await pool.load('dense', dense());
    await pool.load('poison', dense());
    expect(pool.lostModels()).toEqual([]);

    expect(await codeOfAsync(() => pool.infer('poison', request))).toBe('ERR_INFERENCE_FAILED');
    expect(pool.sessions('dense')).toBe(1);
    // The surviving worker still serves.
    expect((await pool.infer('dense', request)).outputs[0]!.shape).toEqual([1, 3]);

    await changed(pool, () => pool.workers.restarts === 1 && pool.workers.alive === 2);
    expect(events).toEqual(expect.arrayContaining(['inference.worker_died', 'inference.worker_replaced']));
    // The replacement holds nothing: both models are lost until the parent streams them again.
    expect(pool.lostModels()).toEqual(['dense', 'poison']);

    expect(await pool.restore('dense', bytes(dense()))).toBe(1);
    expect(pool.lostModels()).toEqual(['poison']);
    expect(pool.sessions('dense')).toBe(2);
    for (let index = 0; index < 4; index++)
      expect((await pool.infer('dense', request)).outputs[0]!.shape).toEqual([1, 3]);
  });

  it('answers ERR_MODEL_NOT_READY while no running worker holds a model, and serves once restored', async () => {
    const { pool } = start(1);
    await pool.load('dense', dense());
    await pool.load('poison', dense());
    expect(await codeOfAsync(() => pool.infer('poison', request))).toBe('ERR_INFERENCE_FAILED');
    await changed(pool, () => pool.workers.restarts === 1 && pool.workers.alive === 1);
    expect(await codeOfAsync(() => pool.infer('dense', request))).toBe('ERR_MODEL_NOT_READY');
    await pool.restore('dense', bytes(dense()));
    expect((await pool.infer('dense', request)).outputs[0]!.shape).toEqual([1, 3]);
  });

  it(`gives a slot up after ${MAX_WORKER_RESTARTS} restarts in a row`, async () => {
    const { pool, events } = start(1);
    await pool.load('poison', dense());
    for (let death = 1; death <= MAX_WORKER_RESTARTS + 1; death++) {
      if (death > 1) await pool.restore('poison', bytes(dense()));
      expect(await codeOfAsync(() => pool.infer('poison', request))).toBe('ERR_INFERENCE_FAILED');
      await changed(pool, () =>
        death <= MAX_WORKER_RESTARTS
          ? pool.workers.restarts === death && pool.workers.alive === 1
          : events.includes('inference.worker_abandoned'),
      );
    }
    expect(pool.workers).toEqual({ size: 1, alive: 0, restarts: MAX_WORKER_RESTARTS });
    expect(await codeOfAsync(() => pool.infer('poison', request))).toBe('ERR_MODEL_NOT_READY');
  }, 60_000);
});
