/**
 * The benchmarks' pure helpers: the open-loop scheduler (on a fake clock, so no timing enters the
 * test), load specs and CPU lists.
 */
import { describe, expect, it } from 'vitest';
import { driveAll, openLoop, parseCpuList, parseLoadSpec, summarize } from '../../../bench/stats.ts';
import type { Clock } from '../../../bench/stats.ts';

/** A clock that only moves when the scheduler sleeps or a fake server works. */
function fakeClock(): Clock & { time: number } {
  const clock = {
    time: 0,
    now: () => clock.time,
    sleep: async (ms: number) => {
      clock.time += Math.max(0, ms);
      await Promise.resolve();
    },
  };
  return clock;
}

describe('openLoop', () => {
  it('counts latency from the scheduled send time, so queueing behind a slow server shows', async () => {
    const clock = fakeClock();
    // One request every 10 ms to a server that needs 20 ms each, one at a time.
    const result = await openLoop(
      5,
      100,
      async () => {
        clock.time += 20;
      },
      clock,
    );
    // Due at 0, 10, 20, 30, 40; done at 20, 40, 60, 80, 100: each waits 10 ms longer than the last.
    // A closed loop would report 20 ms for every one.
    expect(result.latency.p50Ms).toBe(40);
    expect(result.latency.p99Ms).toBe(60);
    expect(result.offeredPerSecond).toBe(100);
    expect(result.perSecond).toBe(50);
  });

  it('keeps calls in flight concurrently and reports the generator lag', async () => {
    const clock = fakeClock();
    const release: (() => void)[] = [];
    const run = openLoop(4, 1000, () => new Promise<void>((resolve) => release.push(resolve)), clock);
    // Let the scheduler start all four (it sleeps 1 ms between them) before any finishes.
    for (let step = 0; step < 20 && release.length < 4; step++) await Promise.resolve();
    expect(release).toHaveLength(4);
    for (const done of release) done();
    const result = await run;
    expect(result.maxInFlight).toBe(4);
    expect(result.startLagP99Ms).toBe(0);
  });

  it('never starts a call before its due time, even when a sleep wakes early', async () => {
    // Timers fire early against hrtime (libuv caches whole milliseconds): a sleep that wakes
    // 0.7 ms short would send the call early and count a latency below its real one.
    const clock = fakeClock();
    clock.sleep = async (ms: number) => {
      clock.time += ms >= 1 ? ms - 0.7 : Math.max(0, ms);
      await Promise.resolve();
    };
    const started: number[] = [];
    const result = await openLoop(
      4,
      100,
      async () => {
        started.push(clock.time);
        clock.time += 0.5;
      },
      clock,
    );
    // Due at 0, 10, 20, 30 ms: none may start before it.
    started.forEach((time, index) => expect(time).toBeGreaterThanOrEqual(index * 10));
    expect(result.latency.p50Ms).toBeGreaterThanOrEqual(0.5);
  });

  it('passes a failed call on after the others finish', async () => {
    const clock = fakeClock();
    await expect(openLoop(3, 100, async () => Promise.reject(new Error('refused')), clock)).rejects.toThrow(
      'refused',
    );
  });
});

describe('load specs', () => {
  it('parses closed and open loops', () => {
    expect(parseLoadSpec('8')).toEqual({ kind: 'closed', concurrency: 8 });
    expect(parseLoadSpec('closed:16')).toEqual({ kind: 'closed', concurrency: 16 });
    expect(parseLoadSpec('open:12.5')).toEqual({ kind: 'open', ratePerSecond: 12.5 });
    for (const bad of ['', 'open:0', 'closed:-1', 'open:x', 'burst:3'])
      expect(() => parseLoadSpec(bad)).toThrow();
  });

  it('resolves open:<f>x against the last closed loop and needs one before it', async () => {
    const results = await driveAll('closed:1,open:0.5x', 3, async () => {});
    expect(results[0]!.load).toBe('closed:1');
    expect(results[1]!.load).toMatch(/^open:\d+(\.\d)?$/);
    await expect(driveAll('open:0.5x', 1, async () => {})).rejects.toThrow('closed loop before');
  });

  it('reports the CPU each call cost the process', async () => {
    // Each call spins until the process has used a little CPU, so the figure cannot be zero.
    const spin = async () => {
      const start = process.cpuUsage();
      for (;;) {
        const used = process.cpuUsage(start);
        if (used.user + used.system >= 2000) return;
      }
    };
    const [result] = await driveAll('closed:1', 3, spin);
    expect(result!.result.cpuMsPerRequest).toBeGreaterThanOrEqual(2);
    expect(Number.isFinite(result!.result.cpuMsPerRequest)).toBe(true);
  });
});

describe('helpers', () => {
  it('parses CPU lists', () => {
    expect(parseCpuList('1')).toEqual([1]);
    expect(parseCpuList('0-2,5,1')).toEqual([0, 1, 2, 5]);
    for (const bad of ['', 'a', '3-1', '1,,2']) expect(() => parseCpuList(bad)).toThrow();
  });

  it('summarizes percentiles', () => {
    const summary = summarize(Array.from({ length: 100 }, (_, index) => index + 1));
    expect(summary).toMatchObject({ count: 100, p50Ms: 51, p99Ms: 100, meanMs: 50.5 });
  });
});
