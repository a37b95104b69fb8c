/**
 * The parent's HTTP API (DESIGN.md 4.1) as a Fastify app. Every route has a JSON schema (Ajv with
 * coercion and removeAdditional off), a body limit and an exact content type; errors leave only
 * through {@link toHttpError}; logs never contain bodies or the Authorization header.
 */
import rateLimit from '@fastify/rate-limit';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import Fastify from 'fastify';
import type { FastifyBaseLogger, FastifyInstance } from 'fastify';
import { HttpError, LinkError } from '../shared/errors.ts';
import type { AdminTokens } from './admin-tokens.ts';
import { installErrorReplies, rateLimitedError } from './fastify-errors.ts';
import type { EnclaveLink } from './link/enclave-link.ts';
import type { ParentMetrics } from './metrics.ts';
import { SERVED_WHILE_DRAINING } from './drain.ts';
import type { HttpDrain } from './drain.ts';
import type { ModelRegistry } from './model-registry.ts';
import { adminRoutes } from './routes/admin.ts';
import { attestationRoutes } from './routes/attestation.ts';
import { healthRoutes } from './routes/health.ts';
import { ohttpRoutes } from './routes/ohttp.ts';

/** Limits of the HTTP edge. */
export interface HttpLimits {
  /** Largest encapsulated inference request. */
  readonly ohttpBodyLimitBytes: number;
  /** Largest admin JSON body. */
  readonly adminBodyLimitBytes: number;
  /** Whole-request timeout (slowloris guard). */
  readonly requestTimeoutMs: number;
  /** Per-client request budget per window. */
  readonly rateLimit: { readonly max: number; readonly windowMs: number };
  /** Link timeout for inference requests. */
  readonly inferenceTimeoutMs: number;
}

export const DEFAULT_HTTP_LIMITS: HttpLimits = {
  ohttpBodyLimitBytes: 8 * 1024 * 1024,
  adminBodyLimitBytes: 16 * 1024,
  requestTimeoutMs: 60_000,
  rateLimit: { max: 600, windowMs: 60_000 },
  inferenceTimeoutMs: 30_000,
};

/** What the app needs. */
export interface ParentAppOptions {
  readonly link: EnclaveLink;
  readonly models: ModelRegistry;
  readonly tokens: AdminTokens;
  readonly metrics: ParentMetrics;
  /** The SIGTERM drain (parent/drain.ts); absent in tests of routes alone. */
  readonly drain?: HttpDrain;
  readonly limits: HttpLimits;
  readonly logger: FastifyBaseLogger | boolean;
  /** Parses an admin `source` string (production pins S3 versions; simulation allows files). */
  readonly parseSource: Parameters<typeof adminRoutes>[1]['parseSource'];
}

export type ParentApp = FastifyInstance<
  import('node:http').Server,
  import('node:http').IncomingMessage,
  import('node:http').ServerResponse,
  FastifyBaseLogger,
  TypeBoxTypeProvider
>;

/** Builds the app (not listening yet). */
export async function buildParentApp(options: ParentAppOptions): Promise<ParentApp> {
  const app = Fastify({
    ...(typeof options.logger === 'boolean'
      ? { logger: options.logger }
      : { loggerInstance: options.logger }),
    bodyLimit: options.limits.adminBodyLimitBytes,
    requestTimeout: options.limits.requestTimeoutMs,
    connectionTimeout: options.limits.requestTimeoutMs,
    return503OnClosing: true,
    ajv: { customOptions: { coerceTypes: false, removeAdditional: false, allErrors: false } },
  }).withTypeProvider<TypeBoxTypeProvider>() as unknown as ParentApp;

  installErrorReplies(app as unknown as FastifyInstance, (code, status, log) =>
    log.warn({ code, status }, 'request failed'),
  );

  const drain = options.drain;
  if (drain !== undefined) {
    // Before everything else (rate limits, bodies): a draining parent takes no new work at all.
    app.addHook('onRequest', async (request) => {
      const path = request.url.split('?', 1)[0] ?? '';
      if (SERVED_WHILE_DRAINING.has(path)) return;
      if (drain.draining)
        throw new HttpError('ERR_HTTP_DRAINING', 'the parent is shutting down; retry on another instance');
      // The enclave said it drains (telemetry): not ready, though requests still reach it until it goes.
      if (drain.enclaveDraining && path === '/v2/health/ready')
        throw new LinkError('ERR_LINK_DRAINING', 'the enclave is shutting down');
      drain.track(request);
    });
    app.addHook('onResponse', async (request) => drain.done(request));
    app.addHook('onRequestAbort', async (request) => drain.done(request));
  }

  // Request counts and latency by route pattern — bounded labels, no URLs, no bodies.
  app.addHook('onResponse', async (request, reply) => {
    const route = request.routeOptions.url ?? 'unmatched';
    options.metrics.requests.inc({ route, method: request.method, status: String(reply.statusCode) });
    options.metrics.latency.observe(
      { route, method: request.method, status: String(reply.statusCode) },
      reply.elapsedTime / 1000,
    );
  });

  await app.register(rateLimit, {
    max: options.limits.rateLimit.max,
    timeWindow: options.limits.rateLimit.windowMs,
    // Health checks from the load balancer must not eat a client's budget or be throttled.
    allowList: (request) => request.url.startsWith('/v2/health/'),
    errorResponseBuilder: rateLimitedError,
  });

  await app.register(healthRoutes, { link: options.link, models: options.models });
  await app.register(attestationRoutes, { link: options.link });
  await app.register(ohttpRoutes, {
    link: options.link,
    metrics: options.metrics,
    bodyLimit: options.limits.ohttpBodyLimitBytes,
    timeoutMs: options.limits.inferenceTimeoutMs,
  });
  await app.register(adminRoutes, {
    models: options.models,
    tokens: options.tokens,
    parseSource: options.parseSource,
  });
  app.get('/metrics', async (_request, reply) => {
    options.metrics.linkUp.set(options.link.state === 'ready' ? 1 : 0);
    // A counter only moves forward: add what the link counted since the last scrape.
    const reconnects = options.link.reconnects;
    const counted = (await options.metrics.linkReconnects.get()).values[0]?.value ?? 0;
    if (reconnects > counted) options.metrics.linkReconnects.inc(reconnects - counted);
    options.metrics.linkInFlight.set(options.link.inFlight);
    const byState = { loading: 0, ready: 0, failed: 0, unavailable: 0 };
    for (const model of options.models.list()) byState[model.state]++;
    for (const [state, count] of Object.entries(byState)) options.metrics.models.set({ state }, count);
    void reply.type(options.metrics.registry.contentType);
    return options.metrics.registry.metrics();
  });
  return app;
}
