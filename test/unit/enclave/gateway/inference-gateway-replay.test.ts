/**
 * Replay through the real gateway (real HPKE, real Binary HTTP, the enclave's own key): a relay
 * that captured one inference request and sends it 100 times gets one answer and 99 typed
 * refusals inside the encryption, and the model runs once. Stale, future and missing Dates are
 * refused the same way; a full cache refuses rather than forgets; fresh requests still succeed. A
 * control gateway without the window answers all 100 copies — what the tests guard against.
 */
import { describe, expect, it } from 'vitest';
import { InferenceGateway } from '../../../../enclave/gateway/inference-gateway.ts';
import { ClusterKeyring } from '../../../../enclave/cluster/cluster-keyring.ts';
import { ReplayWindow } from '../../../../enclave/gateway/replay-window.ts';
import type { InferencePool } from '../../../../enclave/inference/pool.ts';
import type { ModelManager } from '../../../../enclave/models/model-manager.ts';
import { decodeBhttpResponse, encodeBhttpRequest } from '../../../../shared/ohttp/bhttp.ts';
import type { BhttpResponse, Field } from '../../../../shared/ohttp/bhttp.ts';
import { encapsulateRequest } from '../../../../shared/ohttp/encapsulation.ts';
import type { ResponseOpener } from '../../../../shared/ohttp/encapsulation.ts';
import { decodeKeyConfig } from '../../../../shared/ohttp/key-config.ts';
import { RECEIPT_HEADER, verifyReceipt } from '../../../../shared/receipts.ts';

// 2026-12-02T01:00:00Z, a Wednesday.
const NOW = Date.UTC(2026, 11, 2, 1, 0, 0);
const AT_NOW = 'Wed, 02 Dec 2026 01:00:00 GMT';
const MODEL = { name: 'dense', sha384: 'ab'.repeat(48) };
const BODY = new TextEncoder().encode(
  JSON.stringify({ inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 2], data: [1, 2] }] }),
);

async function setup(options: { capacity?: number; replay?: ReplayWindow } = {}) {
  // The enclave's OHTTP key: a cluster key generated inside (enclave/cluster/cluster-keyring.ts).
  const { ohttpKeys } = await ClusterKeyring.generate(() => NOW);
  const clock = { now: NOW };
  const runs = { count: 0 };
  const pool = {
    infer: async () => {
      runs.count++;
      return { model_name: MODEL.name, outputs: [{ name: 'y', datatype: 'FP32', shape: [1], data: [3] }] };
    },
  } as unknown as InferencePool;
  const models = {
    list: () => [{ identity: MODEL, metadata: { name: MODEL.name, inputs: [], outputs: [] }, sizeBytes: 1 }],
  } as unknown as ModelManager;
  const gateway = new InferenceGateway({
    keys: ohttpKeys,
    pool,
    models,
    replay:
      options.replay ??
      new ReplayWindow({ windowMs: 60_000, capacity: options.capacity ?? 1024, clock: () => clock.now }),
    clock: () => clock.now,
  });
  const config = decodeKeyConfig(ohttpKeys.keyConfig);
  /** What a client sends: a fresh encapsulation of an infer request with `date` (none for null). */
  const request = async (date: string | null = AT_NOW) => {
    const headers: Field[] = [['content-type', 'application/json']];
    if (date !== null) headers.push(['date', date]);
    const message = encodeBhttpRequest({
      method: 'POST',
      scheme: 'https',
      authority: '',
      path: `/v2/models/${MODEL.name}/infer`,
      headers,
      content: BODY,
      trailers: [],
    });
    return encapsulateRequest(config, message);
  };
  const open = (opener: ResponseOpener, sealed: Uint8Array): BhttpResponse =>
    decodeBhttpResponse(opener.open(sealed));
  return { gateway, request, open, runs, clock, receiptKey: ohttpKeys.receipts.publicKeyRaw };
}

const codeIn = (response: BhttpResponse) =>
  (JSON.parse(new TextDecoder().decode(response.content)) as { code?: string }).code;
const header = (response: BhttpResponse, name: string) =>
  response.headers.find(([field]) => field === name)?.[1];

describe('the OHTTP gateway refuses replays', () => {
  it('one captured request sent 100 times: one answer, 99 ERR_OHTTP_REPLAYED inside the encryption', async () => {
    const { gateway, request, open, runs, receiptKey } = await setup();
    const { encapsulated, opener } = await request();
    const answers = await Promise.all(Array.from({ length: 100 }, () => gateway.handle(encapsulated)));
    const responses = answers.map((sealed) => open(opener, sealed));
    const answered = responses.filter((response) => response.status === 200);
    expect(answered).toHaveLength(1);
    const refused = responses.filter((response) => response.status !== 200);
    expect(refused).toHaveLength(99);
    for (const response of refused) {
      expect(response.status).toBe(400);
      expect(codeIn(response)).toBe('ERR_OHTTP_REPLAYED');
      expect(header(response, RECEIPT_HEADER)).toBeUndefined(); // nothing ran, nothing is signed
    }
    expect(runs.count).toBe(1);
    const receipt = header(answered[0]!, RECEIPT_HEADER);
    expect(verifyReceipt(receipt!, receiptKey, { model: MODEL.name, request: BODY }).model).toBe(MODEL.name);

    // The gateway still serves: a fresh request (new enc) is answered.
    const fresh = await request();
    expect(open(fresh.opener, await gateway.handle(fresh.encapsulated)).status).toBe(200);
    expect(runs.count).toBe(2);
  });

  it('control: without the window (an admit that lets all through) all 100 copies run the model', async () => {
    const permissive = { admit: () => {} } as unknown as ReplayWindow;
    const { gateway, request, open, runs } = await setup({ replay: permissive });
    const { encapsulated, opener } = await request();
    for (let copy = 0; copy < 100; copy++) {
      expect(open(opener, await gateway.handle(encapsulated)).status).toBe(200);
    }
    expect(runs.count).toBe(100);
  });

  it.each([
    ['stale', 'Wed, 02 Dec 2026 00:58:59 GMT'],
    ['from the future', 'Wed, 02 Dec 2026 01:01:01 GMT'],
    ['missing', null],
    ['not an HTTP date', '2026-12-02T01:00:00Z'],
  ])('a %s Date is ERR_OHTTP_DATE_INVALID (400, with the gateway Date), never run', async (_, date) => {
    const { gateway, request, open, runs } = await setup();
    const { encapsulated, opener } = await request(date);
    const response = open(opener, await gateway.handle(encapsulated));
    expect(response.status).toBe(400);
    expect(codeIn(response)).toBe('ERR_OHTTP_DATE_INVALID');
    expect(header(response, 'date')).toBe(AT_NOW);
    expect(runs.count).toBe(0);
    const fresh = await request();
    expect(open(fresh.opener, await gateway.handle(fresh.encapsulated)).status).toBe(200);
  });

  it('cache full: new requests get ERR_OHTTP_REPLAY_CACHE_FULL (503, Retry-After), old ones stay refused', async () => {
    const { gateway, request, open, runs, clock } = await setup({ capacity: 64 });
    const first = await request();
    expect(open(first.opener, await gateway.handle(first.encapsulated)).status).toBe(200);
    for (let index = 1; index < 64; index++) {
      const next = await request();
      expect(open(next.opener, await gateway.handle(next.encapsulated)).status).toBe(200);
    }
    expect(runs.count).toBe(64);
    const overflow = await request();
    const refused = open(overflow.opener, await gateway.handle(overflow.encapsulated));
    expect(refused.status).toBe(503);
    expect(codeIn(refused)).toBe('ERR_OHTTP_REPLAY_CACHE_FULL');
    expect(header(refused, 'retry-after')).toBe('1');
    // Not evicted: the first request, the oldest entry, is still a refused replay.
    const replay = open(first.opener, await gateway.handle(first.encapsulated));
    expect(codeIn(replay)).toBe('ERR_OHTTP_REPLAYED');
    expect(runs.count).toBe(64);
    // Once those Dates have left the window there is room again.
    clock.now = NOW + 61_000;
    const later = await request('Wed, 02 Dec 2026 01:01:01 GMT');
    expect(open(later.opener, await gateway.handle(later.encapsulated)).status).toBe(200);
  });

  it('a request that does not decapsulate is refused outside and does not enter the cache', async () => {
    const { gateway, request, open } = await setup({ capacity: 1024 });
    const { encapsulated, opener } = await request();
    const tampered = Uint8Array.from(encapsulated);
    tampered[tampered.byteLength - 1]! ^= 1;
    await expect(gateway.handle(tampered)).rejects.toMatchObject({ code: 'ERR_DECRYPT_FAILED' });
    // The same enc, now with its real ciphertext, is answered: the failed copy was not remembered.
    expect(open(opener, await gateway.handle(encapsulated)).status).toBe(200);
  });
});
