/**
 * The replay window on its own, with a hand-driven clock: Dates outside ±window, missing or
 * unreadable Dates, an `enc` seen twice, a full cache that refuses instead of forgetting, and
 * entries forgotten only once their Date has left the window (when the Date check takes over).
 * Expected Dates are written out literally, never produced by the code under test.
 */
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { ReplayWindow } from '../../../../enclave/gateway/replay-window.ts';
import type { Field } from '../../../../shared/ohttp/bhttp.ts';
import { codeOf } from '../../../helpers/codes.ts';

// 2026-12-02T01:00:00Z, a Wednesday.
const NOW = Date.UTC(2026, 11, 2, 1, 0, 0);
const AT_NOW = 'Wed, 02 Dec 2026 01:00:00 GMT';
const WINDOW_MS = 60_000;

function setup(capacity = 16) {
  const clock = { now: NOW };
  const window = new ReplayWindow({ windowMs: WINDOW_MS, capacity, clock: () => clock.now });
  const admit = (date: string | undefined, enc: Uint8Array = randomBytes(32)) =>
    codeOf(() => window.admit(date === undefined ? [] : [['date', date]], enc));
  return { clock, window, admit };
}

describe('ReplayWindow: the Date', () => {
  it.each([
    ['now', AT_NOW],
    ['the past edge (−60 s)', 'Wed, 02 Dec 2026 00:59:00 GMT'],
    ['the future edge (+60 s)', 'Wed, 02 Dec 2026 01:01:00 GMT'],
  ])('accepts a Date at %s', (_, date) => {
    expect(setup().admit(date)).toBe('accepted');
  });

  it.each([
    ['stale by one second past the window', 'Wed, 02 Dec 2026 00:58:59 GMT'],
    ['stale by a day', 'Tue, 01 Dec 2026 01:00:00 GMT'],
    ['in the future by one second past the window', 'Wed, 02 Dec 2026 01:01:01 GMT'],
    ['in the future by a year', 'Thu, 02 Dec 2027 01:00:00 GMT'],
    ['empty', ''],
    ['in another zone', 'Wed, 02 Dec 2026 01:00:00 UTC'],
    ['RFC 850 (obsolete)', 'Wednesday, 02-Dec-26 01:00:00 GMT'],
    ['asctime (obsolete)', 'Wed Dec  2 01:00:00 2026'],
    ['with the wrong weekday', 'Thu, 02 Dec 2026 01:00:00 GMT'],
    ['an impossible day', 'Mon, 31 Feb 2026 01:00:00 GMT'],
    ['epoch milliseconds', String(NOW)],
    ['padded', ` ${AT_NOW}`],
  ])('refuses a Date %s with ERR_OHTTP_DATE_INVALID', (_, date) => {
    expect(setup().admit(date)).toBe('ERR_OHTTP_DATE_INVALID');
  });

  it('refuses a request without a Date, and one with two', () => {
    const { window, admit } = setup();
    expect(admit(undefined)).toBe('ERR_OHTTP_DATE_INVALID');
    const twice: Field[] = [
      ['date', AT_NOW],
      ['date', AT_NOW],
    ];
    expect(codeOf(() => window.admit(twice, randomBytes(32)))).toBe('ERR_OHTTP_DATE_INVALID');
    expect(window.size).toBe(0);
  });

  it('control: the same Date one second inside the edge passes, so the edge test measures the window', () => {
    const { admit, clock } = setup();
    clock.now = NOW - 1000;
    expect(admit('Wed, 02 Dec 2026 01:00:59 GMT')).toBe('accepted');
    expect(admit('Wed, 02 Dec 2026 01:01:00 GMT')).toBe('ERR_OHTTP_DATE_INVALID');
  });
});

describe('ReplayWindow: the enc cache', () => {
  it('an enc is admitted once; every copy after it is ERR_OHTTP_REPLAYED', () => {
    const { admit, window } = setup();
    const enc = randomBytes(32);
    expect(admit(AT_NOW, enc)).toBe('accepted');
    for (let copy = 0; copy < 5; copy++) expect(admit(AT_NOW, enc)).toBe('ERR_OHTTP_REPLAYED');
    // A copy with another (valid) Date is the same request: the enc names it, not the Date.
    expect(admit('Wed, 02 Dec 2026 01:00:30 GMT', Uint8Array.from(enc))).toBe('ERR_OHTTP_REPLAYED');
    expect(window.size).toBe(1);
  });

  it('a refused Date does not enter the cache: the same enc with a good Date is then accepted', () => {
    const { admit } = setup();
    const enc = randomBytes(32);
    expect(admit('Tue, 01 Dec 2026 01:00:00 GMT', enc)).toBe('ERR_OHTTP_DATE_INVALID');
    expect(admit(AT_NOW, enc)).toBe('accepted');
  });

  it('full: refuses new requests with ERR_OHTTP_REPLAY_CACHE_FULL and forgets nothing', () => {
    const { admit, window } = setup(4);
    const admitted = [randomBytes(32), randomBytes(32), randomBytes(32), randomBytes(32)];
    for (const enc of admitted) expect(admit(AT_NOW, enc)).toBe('accepted');
    expect(admit(AT_NOW)).toBe('ERR_OHTTP_REPLAY_CACHE_FULL');
    expect(admit(AT_NOW)).toBe('ERR_OHTTP_REPLAY_CACHE_FULL');
    // No eviction: every admitted request is still refused as a replay, the oldest included.
    for (const enc of admitted) expect(admit(AT_NOW, enc)).toBe('ERR_OHTTP_REPLAYED');
    expect(window.size).toBe(4);
  });

  it('forgets an enc only once its Date has left the window; its replay is then refused by Date', () => {
    const { admit, window, clock } = setup(1);
    const enc = randomBytes(32);
    expect(admit(AT_NOW, enc)).toBe('accepted');
    clock.now = NOW + WINDOW_MS; // the Date is exactly at the window's past edge: still remembered
    expect(admit(AT_NOW, enc)).toBe('ERR_OHTTP_REPLAYED');
    expect(admit('Wed, 02 Dec 2026 01:01:00 GMT')).toBe('ERR_OHTTP_REPLAY_CACHE_FULL');
    clock.now = NOW + WINDOW_MS + 1000;
    expect(window.size).toBe(0);
    expect(admit(AT_NOW, enc)).toBe('ERR_OHTTP_DATE_INVALID');
    // The room it left serves a new request.
    expect(admit('Wed, 02 Dec 2026 01:01:01 GMT')).toBe('accepted');
  });

  it('an enc accepted with a future Date is remembered until that Date leaves the window', () => {
    const { admit, clock } = setup();
    const enc = randomBytes(32);
    expect(admit('Wed, 02 Dec 2026 01:01:00 GMT', enc)).toBe('accepted');
    clock.now = NOW + 2 * WINDOW_MS; // the Date is now at the past edge
    expect(admit('Wed, 02 Dec 2026 01:01:00 GMT', enc)).toBe('ERR_OHTTP_REPLAYED');
    clock.now = NOW + 2 * WINDOW_MS + 1000;
    expect(admit('Wed, 02 Dec 2026 01:01:00 GMT', enc)).toBe('ERR_OHTTP_DATE_INVALID');
  });

  it('refuses nonsensical settings', () => {
    expect(() => new ReplayWindow({ windowMs: 0 })).toThrow(RangeError);
    expect(() => new ReplayWindow({ windowMs: 1500 })).toThrow(RangeError);
    expect(() => new ReplayWindow({ capacity: 0 })).toThrow(RangeError);
  });
});
