/**
 * Prometheus metrics (DESIGN.md 4.1): counts and latencies, the link's state, models by state —
 * never content. Labels are bounded: the route pattern (not the URL), the method, the status.
 * Names follow Prometheus conventions: one prefix (`nitro_infer_`, the process metrics too),
 * counters end in `_total`, units in the name.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export class ParentMetrics {
  readonly registry = new Registry();
  readonly requests = new Counter({
    name: 'nitro_infer_http_requests_total',
    help: 'HTTP requests by route pattern, method and status',
    labelNames: ['route', 'method', 'status'] as const,
    registers: [this.registry],
  });
  readonly latency = new Histogram({
    name: 'nitro_infer_http_request_duration_seconds',
    help: 'HTTP request latency by route pattern, method and status',
    labelNames: ['route', 'method', 'status'] as const,
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [this.registry],
  });
  readonly linkUp = new Gauge({
    name: 'nitro_infer_enclave_link_up',
    help: '1 when the link to the enclave is ready',
    registers: [this.registry],
  });
  readonly linkReconnects = new Counter({
    name: 'nitro_infer_enclave_link_reconnects_total',
    help: 'Times the link was re-established since start',
    registers: [this.registry],
  });
  readonly linkInFlight = new Gauge({
    name: 'nitro_infer_enclave_link_in_flight',
    help: 'Requests waiting for the enclave',
    registers: [this.registry],
  });
  /** Registered models by state; `ready` counts only models whose enclave is reachable. */
  readonly models = new Gauge({
    name: 'nitro_infer_models',
    help: 'Registered models by state (ready only while the enclave serving them is reachable)',
    labelNames: ['state'] as const,
    registers: [this.registry],
  });
  readonly relayedBytes = new Counter({
    name: 'nitro_infer_ohttp_relayed_bytes_total',
    help: 'Encapsulated bytes relayed, by direction',
    labelNames: ['direction'] as const,
    registers: [this.registry],
  });

  /** Enclave telemetry (parent/link/telemetry-poller.ts): operator events, never per-request facts. */
  readonly enclaveEvents = new Counter({
    name: 'nitro_infer_enclave_events_total',
    help: 'Operator events the enclave reported over the link, by event and level',
    labelNames: ['event', 'level'] as const,
    registers: [this.registry],
  });
  readonly enclaveModelLoadFailures = new Counter({
    name: 'nitro_infer_enclave_model_load_failures_total',
    help: 'Model loads that failed inside the enclave, by error code',
    labelNames: ['code'] as const,
    registers: [this.registry],
  });
  readonly enclaveTelemetryDropped = new Counter({
    name: 'nitro_infer_enclave_telemetry_dropped_total',
    help: 'Enclave events overwritten in its bounded buffer before the parent polled them',
    registers: [this.registry],
  });
  readonly enclaveMemoryUsed = new Gauge({
    name: 'nitro_infer_enclave_memory_used_bytes',
    help: "Bytes of the enclave's model memory budget in use",
    registers: [this.registry],
  });
  readonly enclaveMemoryLimit = new Gauge({
    name: 'nitro_infer_enclave_memory_limit_bytes',
    help: "The enclave's model memory budget",
    registers: [this.registry],
  });
  readonly enclaveWorkers = new Gauge({
    name: 'nitro_infer_enclave_workers',
    help: 'Inference worker threads in the enclave, configured and alive',
    labelNames: ['state'] as const,
    registers: [this.registry],
  });
  readonly enclaveRequestsInFlight = new Gauge({
    name: 'nitro_infer_enclave_requests_in_flight',
    help: 'OHTTP requests the enclave is handling, all models together (as last polled)',
    registers: [this.registry],
  });
  readonly enclaveWorkerRestarts = new Counter({
    name: 'nitro_infer_enclave_worker_restarts_total',
    help: 'Inference workers the enclave replaced after they died',
    registers: [this.registry],
  });

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: 'nitro_infer_' });
  }
}
