/**
 * `telemetry.poll`: the operator events recorded since `after` (server/telemetry.ts), at most
 * `max` of them, beside the gauges an operator watches — memory against the budget, the workers,
 * and the OHTTP requests in flight. Nothing here is per model or per request (shared/telemetry.ts says why). Polls beyond
 * the rate limit get ERR_LINK_OVERLOADED: the answer costs a bounded amount whatever the parent
 * sends.
 */
import { MAX_TELEMETRY_EVENTS_PER_POLL } from '../../shared/telemetry.ts';
import { LinkError } from '../../shared/errors.ts';
import type { InferencePool } from '../inference/pool.ts';
import type { MemoryBudget } from '../models/memory-budget.ts';
import type { LinkHandler } from '../server/link-server.ts';
import type { EnclaveTelemetry } from '../server/telemetry.ts';
import { invalidRequest } from './fields.ts';

export function telemetryPollHandler(
  telemetry: EnclaveTelemetry,
  pool: Pick<InferencePool, 'workers'>,
  budget: Pick<MemoryBudget, 'limitBytes' | 'usedBytes'>,
  requests: { readonly inFlight: number } = { inFlight: 0 },
): LinkHandler {
  const hooked = new Set<number>();
  return async (fields, connection) => {
    const after = fields.get('after') ?? 0;
    if (typeof after !== 'number' || !Number.isSafeInteger(after) || after < 0) {
      throw invalidRequest('after must be a sequence number');
    }
    const max = fields.get('max') ?? MAX_TELEMETRY_EVENTS_PER_POLL;
    if (
      typeof max !== 'number' ||
      !Number.isSafeInteger(max) ||
      max < 1 ||
      max > MAX_TELEMETRY_EVENTS_PER_POLL
    ) {
      throw invalidRequest(`max must be 1 to ${MAX_TELEMETRY_EVENTS_PER_POLL}`);
    }
    if (!hooked.has(connection.id)) {
      hooked.add(connection.id);
      connection.onClose(() => {
        hooked.delete(connection.id);
        telemetry.forget(connection.id);
      });
    }
    if (!telemetry.admitPoll(connection.id)) {
      throw new LinkError('ERR_LINK_OVERLOADED', 'telemetry is polled faster than the enclave answers');
    }
    const batch = telemetry.poll(after, max);
    const workers = pool.workers;
    return {
      boot: telemetry.boot,
      events: batch.events.map((event) => ({ ...event })),
      last: batch.last,
      dropped: batch.dropped,
      memory: { limitBytes: budget.limitBytes, usedBytes: budget.usedBytes },
      workers: { size: workers.size, alive: workers.alive, restarts: workers.restarts },
      // An aggregate the parent observes anyway (it relays each request): no model, no outcome.
      requests: { inFlight: requests.inFlight },
    };
  };
}
