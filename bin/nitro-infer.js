#!/usr/bin/env node
// Runs the TypeScript sources directly through tsx's loader, so a fresh clone needs no build step.
import { register } from 'tsx/esm/api';

// ONNX Runtime's telemetry off for every verb, before anything loads it (the simulation's
// self-check runs onnxruntime-node in this process); see enclave/inference/onnxruntime-env.ts.
process.env.ORT_DISABLE_TELEMETRY = '1';

register();
await import('../scripts/main.ts');
