/**
 * The parent's drain on SIGTERM (docs/protocols.md "Stopping"): from its start every new request
 * but liveness and /metrics is answered 503 ERR_HTTP_DRAINING with Retry-After — readiness among
 * them, so the load balancer takes the instance out at once — while the requests already in
 * flight run to their end; {@link HttpDrain.idle} resolves when the last one has answered.
 */

/** Routes still served while draining: liveness (the process is up) and metrics (watch the drain). */
export const SERVED_WHILE_DRAINING: ReadonlySet<string> = new Set(['/v2/health/live', '/metrics']);

export class HttpDrain {
  readonly #inFlight = new Set<object>();
  #draining = false;
  #idle: (() => void)[] = [];
  /** Set while the enclave reports a drain of its own (parent/link/telemetry-poller.ts). */
  enclaveDraining = false;

  get draining(): boolean {
    return this.#draining;
  }

  /** Requests being answered now (those that arrived before the drain began). */
  get inFlight(): number {
    return this.#inFlight.size;
  }

  start(): void {
    this.#draining = true;
  }

  /** Counts a request until {@link done}. */
  track(request: object): void {
    this.#inFlight.add(request);
  }

  /** Safe to call more than once per request (a response, then an abort). */
  done(request: object): void {
    if (!this.#inFlight.delete(request)) return;
    if (this.#inFlight.size === 0) for (const resolve of this.#idle.splice(0)) resolve();
  }

  /** Resolves once no request is in flight. */
  idle(): Promise<void> {
    if (this.#inFlight.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idle.push(resolve));
  }
}
