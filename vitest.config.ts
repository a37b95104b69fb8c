import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 30_000,
    // Several files start real processes (enclaves, Ceph, the whole stack); on a 2-core machine
    // running them side by side only makes each slower and its timeouts flakier.
    fileParallelism: false,
    hookTimeout: 60_000,
    // No ONNX Runtime telemetry from test processes either (enclave/inference/onnxruntime-env.ts);
    // test files run in child processes, so native code sees this.
    env: { ORT_DISABLE_TELEMETRY: '1' },
    coverage: {
      provider: 'v8',
      include: ['shared/**/*.ts'],
    },
  },
});
