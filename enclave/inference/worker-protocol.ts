/** Messages between the inference pool and its worker threads. */
import type { FlatTensor, V2ModelMetadata } from '../../shared/inference/v2.ts';

export type WorkerRequest =
  | {
      readonly op: 'load';
      readonly name: string;
      /**
       * The plaintext's buffer, moved (not copied) to the worker; the model is the `byteLength` bytes
       * at `byteOffset`. The worker moves the buffer back in its answer, so one buffer serves every
       * worker in turn and is never left to the collector.
       */
      readonly buffer: ArrayBuffer;
      readonly byteOffset: number;
      readonly byteLength: number;
      /** Zero the bytes once the session is built (the last worker to get them). */
      readonly wipe: boolean;
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
  | {
      readonly op: 'loaded';
      readonly name: string;
      readonly metadata: V2ModelMetadata;
      readonly buffer: ArrayBuffer;
    }
  /** Sent only after the session's memory has been released. */
  | { readonly op: 'unloaded'; readonly name: string }
  | { readonly op: 'result'; readonly requestId: number; readonly outputs: readonly FlatTensor[] }
  | {
      readonly op: 'failed';
      readonly requestId?: number;
      readonly name?: string;
      /** The load's buffer, moved back (zeroed) when the failure is a load's. */
      readonly buffer?: ArrayBuffer;
      readonly code: string;
      readonly message: string;
    };
