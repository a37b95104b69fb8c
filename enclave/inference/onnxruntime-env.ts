/**
 * ONNX Runtime's telemetry, off in every process that loads it. The Linux library of
 * onnxruntime-node 1.30 carries Microsoft's 1DS telemetry client: from the first session on it
 * keeps `~/.cache/Microsoft/DeveloperTools/.onnxruntime/` (a device id and `onnxruntime.db`, a queue
 * of events naming the model's graph and opsets, session options and run statistics) and uploads
 * it to mobile.events.data.microsoft.com. In simulation that is the host's disk and network; in an
 * enclave it is still model metadata written where it need not be. The Node binding has no session
 * or environment option for it; the native library reads `ORT_DISABLE_TELEMETRY` from the process
 * environment when it creates its environment (measured: at the first session), so it must be set
 * before then — set "1", the value every version honours. Importing this module sets it. Worker threads read the environment the main thread set — a
 * worker's own `process.env` is a copy native code never sees — so the pool, which starts the
 * workers, imports this module, and so does every main-thread user of onnxruntime-node.
 */

/** The environment variable onnxruntime-node 1.30's native library checks. */
export const ONNXRUNTIME_TELEMETRY_SWITCH = 'ORT_DISABLE_TELEMETRY';

process.env[ONNXRUNTIME_TELEMETRY_SWITCH] = '1';
