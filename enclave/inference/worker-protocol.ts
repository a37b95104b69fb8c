/** Messages between the inference pool and its worker threads. */
import type { FlatTensor, V2ModelMetadata } from '../../shared/inference/v2.ts';

export type WorkerRequest =
  | {
      readonly op: 'load';
      readonly name: string;
      readonly model: Uint8Array;
      readonly intraOpThreads: number;
    }
  | { readonly op: 'unload'; readonly name: string }
  | {
      readonly op: 'run';
      readonly requestId: number;
      readonly name: string;
      readonly inputs: readonly FlatTensor[];
      readonly outputNames?: readonly string[];
    };

export type WorkerResponse =
  | { readonly op: 'loaded'; readonly name: string; readonly metadata: V2ModelMetadata }
  | { readonly op: 'unloaded'; readonly name: string }
  | { readonly op: 'result'; readonly requestId: number; readonly outputs: readonly FlatTensor[] }
  | {
      readonly op: 'failed';
      readonly requestId?: number;
      readonly name?: string;
      readonly code: string;
      readonly message: string;
    };
