/**
 * The parent's code → status table: every code of shared/errors.ts either has a status or is
 * listed, with a reason, as one that never gets one (so a new code cannot silently become a bare
 * 500); and an empty artifact, refused by the real enclave `model.load` handler, reaches the
 * operator as a 422 with its code over real sockets (fetch → Fastify → link → enclave handler).
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { modelLoadHandler } from '../../../enclave/handlers/model-load.ts';
import { Uploads } from '../../../enclave/handlers/uploads.ts';
import type { InferencePool } from '../../../enclave/inference/pool.ts';
import { MemoryBudget } from '../../../enclave/models/memory-budget.ts';
import { ModelManager } from '../../../enclave/models/model-manager.ts';
import { AdminTokens } from '../../../parent/admin-tokens.ts';
import { buildParentApp } from '../../../parent/app.ts';
import type { ParentApp } from '../../../parent/app.ts';
import { parseArtifactSource } from '../../../parent/artifacts/artifact-source.ts';
import { FileArtifactStore } from '../../../parent/artifacts/file-store.ts';
import { CODES_WITHOUT_STATUS, HTTP_STATUS_BY_CODE, toHttpError } from '../../../parent/http-errors.ts';
import { EnclaveLink } from '../../../parent/link/enclave-link.ts';
import { ParentMetrics } from '../../../parent/metrics.ts';
import { ModelRegistry } from '../../../parent/model-registry.ts';
import { ERROR_CODES, ModelError } from '../../../shared/errors.ts';
import type { ErrorCode } from '../../../shared/errors.ts';
import { connectTransport } from '../../../transport/index.ts';
import { FakeEnclave } from '../../helpers/fake-enclave.ts';

/** Codes with neither a status nor a stated reason, and codes with both. */
function unclassified(
  statuses: Readonly<Partial<Record<ErrorCode, number>>>,
  reasons: Readonly<Partial<Record<ErrorCode, string>>>,
) {
  return {
    missing: ERROR_CODES.filter((code) => statuses[code] === undefined && reasons[code] === undefined),
    both: ERROR_CODES.filter((code) => statuses[code] !== undefined && reasons[code] !== undefined),
  };
}

describe('the code → status table', () => {
  it('every code has a status or a stated reason to have none, never both', () => {
    expect(unclassified(HTTP_STATUS_BY_CODE, CODES_WITHOUT_STATUS)).toEqual({ missing: [], both: [] });
    for (const reason of Object.values(CODES_WITHOUT_STATUS)) expect(reason.length).toBeGreaterThan(5);
  });

  it('control: a table without ERR_MODEL_LOAD_FAILED (as before) is caught', () => {
    const { ERR_MODEL_LOAD_FAILED: _dropped, ...before } = HTTP_STATUS_BY_CODE;
    expect(_dropped).toBe(422);
    expect(unclassified(before, CODES_WITHOUT_STATUS).missing).toEqual(['ERR_MODEL_LOAD_FAILED']);
  });

  it('ERR_MODEL_LOAD_FAILED is a 422 that keeps its code and message', () => {
    const reply = toHttpError(new ModelError('ERR_MODEL_LOAD_FAILED', 'artifact size must be 1 to 8 bytes'));
    expect(reply).toEqual({
      status: 422,
      headers: {},
      body: { error: { code: 'ERR_MODEL_LOAD_FAILED', message: 'artifact size must be 1 to 8 bytes' } },
    });
  });
});

describe('an empty artifact through the admin API', () => {
  let directory = '';
  let enclave: FakeEnclave;
  let link: EnclaveLink;
  let app: ParentApp;
  let url = '';
  const TOKEN = 'a'.repeat(32);

  beforeAll(async () => {
    directory = await mkdtemp(path.join(os.tmpdir(), 'ni-empty-'));
    enclave = await FakeEnclave.create();
    // The enclave's own model.load handler and model manager; nothing here reaches KMS or a worker.
    const models = new ModelManager({
      pool: {} as InferencePool,
      budget: new MemoryBudget(1024 * 1024),
      decrypt: async () => {
        throw new Error('no KMS in this test');
      },
    });
    enclave.handlers.set('model.load', modelLoadHandler(models, new Uploads()));
    enclave.handlers.set('status', async () => ({ models: [] }));
    enclave.handlers.set('ohttp.config', async () => ({ keyConfig: new Uint8Array([0x01, 0x00, 0x20]) }));
    enclave.handlers.set('credentials', async () => ({}));
    await enclave.start();
    link = new EnclaveLink({
      connect: () => connectTransport(`unix:${enclave.socketPath}`),
      backoff: { initialMs: 10, maxMs: 20 },
    });
    app = await buildParentApp({
      link,
      models: new ModelRegistry({
        link,
        stores: { s3: undefined, file: new FileArtifactStore() },
        log: () => {},
      }),
      tokens: AdminTokens.parse(JSON.stringify({ tokens: [TOKEN] }), 'test'),
      metrics: new ParentMetrics(),
      logger: false,
      limits: {
        ohttpBodyLimitBytes: 64 * 1024,
        adminBodyLimitBytes: 4096,
        requestTimeoutMs: 10_000,
        inferenceTimeoutMs: 5_000,
        rateLimit: { max: 100, windowMs: 60_000 },
      },
      parseSource: (source) => parseArtifactSource(source, { requireVersion: false, allowFile: true }),
    });
    link.start();
    await link.ready();
    url = await app.listen({ host: '127.0.0.1', port: 0 });
  });

  afterAll(async () => {
    link?.close();
    await app?.close();
    await enclave?.dispose();
    await rm(directory, { recursive: true, force: true });
  });

  it('is a 422 ERR_MODEL_LOAD_FAILED with the reason, not a bare 500; the parent keeps serving', async () => {
    const empty = path.join(directory, 'empty.sealed');
    await writeFile(empty, new Uint8Array(0));
    const response = await fetch(`${url}/admin/models/empty`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ source: `file://${empty}` }),
    });
    expect(response.status).toBe(422);
    const body = (await response.json()) as { error: { code: string; message: string } };
    expect(body.error.code).toBe('ERR_MODEL_LOAD_FAILED');
    expect(body.error.message).toMatch(/artifact size must be 1 to \d+ bytes/);
    expect(enclave.received).toContain('model.load');
    expect((await fetch(`${url}/v2/health/live`)).status).toBe(200);
  });
});
