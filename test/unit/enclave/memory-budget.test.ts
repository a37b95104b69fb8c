/**
 * The memory budget's accounting (issue 10, attack 3): a claim is never free while its memory can
 * still be held. Buffers stay counted while idle, lent or being freed; reuse takes the same memory;
 * zeroing touches only what was written; freeing is a detach, observed, not the collector's whim.
 */
import { describe, expect, it } from 'vitest';
import { MAX_IDLE_BUFFERS, MemoryBudget } from '../../../enclave/models/memory-budget.ts';
import { codeOf } from '../../helpers/codes.ts';

const MIB = 1024 * 1024;

describe('MemoryBudget', () => {
  it('refuses a reservation past the limit with ERR_MODEL_TOO_LARGE and frees it on release', () => {
    const budget = new MemoryBudget(8 * MIB);
    const first = budget.reserve(6 * MIB);
    expect(codeOf(() => budget.reserve(3 * MIB))).toBe('ERR_MODEL_TOO_LARGE');
    first.release();
    first.release(); // twice is once
    expect(budget.usedBytes).toBe(0);
    expect(codeOf(() => budget.reserve(8 * MIB))).toBe('accepted');
  });

  it('keeps a released buffer counted and lends the same memory to the next load, zeroed', () => {
    const budget = new MemoryBudget(8 * MIB);
    const first = budget.acquire(3 * MIB);
    const memory = first.view.buffer;
    first.view.fill(0xab, 0, 1000);
    first.written = 1000;
    first.release();
    // Idle, not free: an abandoned load leaves nothing to the garbage collector's timing.
    expect(budget.usedBytes).toBe(3 * MIB);
    expect(codeOf(() => budget.reserve(6 * MIB))).toBe('ERR_MODEL_TOO_LARGE');

    const second = budget.acquire(2 * MIB);
    expect(second.view.buffer).toBe(memory);
    expect(second.view.byteLength).toBe(2 * MIB);
    expect(budget.usedBytes).toBe(3 * MIB);
    expect(second.view.subarray(0, 1000).every((byte) => byte === 0)).toBe(true);
  });

  it('zeroes only the bytes written (a full pass would map pages nothing touched)', () => {
    const budget = new MemoryBudget(8 * MIB);
    const lease = budget.acquire(MIB);
    const view = lease.view;
    view.fill(0x11, 0, 64);
    lease.written = 64;
    view[100] = 0x22; // beyond `written`: not the lease's business, so left as it is
    lease.release();
    expect(view.subarray(0, 64).every((byte) => byte === 0)).toBe(true);
    expect(view[100]).toBe(0x22);
  });

  it('makes room by detaching idle buffers, and counts them until their memory is gone', async () => {
    const budget = new MemoryBudget(8 * MIB);
    const lease = budget.acquire(6 * MIB);
    const memory = lease.view.buffer;
    lease.release();
    // Without making room, the idle buffer stands in the way (the check that protects the bound).
    expect(codeOf(() => budget.reserve(4 * MIB))).toBe('ERR_MODEL_TOO_LARGE');
    const room = budget.makeRoom(4 * MIB, MIB);
    expect(memory.byteLength).toBe(0); // detached at once: nothing here can reach it any more
    expect(budget.usedBytes).toBe(6 * MIB); // still counted until the free has happened
    await room;
    expect(budget.usedBytes).toBe(0);
    expect(codeOf(() => budget.reserve(4 * MIB))).toBe('accepted');
    expect(codeOf(() => budget.acquire(MIB))).toBe('accepted');
  });

  it('keeps an idle buffer that the next load can reuse when making room', async () => {
    const budget = new MemoryBudget(8 * MIB);
    const lease = budget.acquire(2 * MIB);
    const memory = lease.view.buffer;
    lease.release();
    await budget.makeRoom(5 * MIB, 2 * MIB);
    expect(budget.acquire(2 * MIB).view.buffer).toBe(memory);
  });

  it('counts a buffer lent to a worker until it comes back, or until its worker is gone', () => {
    const budget = new MemoryBudget(8 * MIB);
    const lease = budget.acquire(4 * MIB);
    const moved = lease.lend();
    lease.release(); // the worker still has it: nothing is released
    expect(budget.usedBytes).toBe(4 * MIB);
    lease.restore(moved);
    lease.release();
    expect(budget.usedBytes).toBe(4 * MIB); // idle in the pool

    const again = budget.acquire(4 * MIB);
    again.lend();
    again.lost(); // the worker exited: its heap, and the buffer, are gone
    expect(budget.usedBytes).toBe(0);
  });

  it(`keeps at most ${MAX_IDLE_BUFFERS} idle buffers and frees the smallest beyond`, async () => {
    const budget = new MemoryBudget(64 * MIB);
    const leases = Array.from({ length: MAX_IDLE_BUFFERS + 1 }, (_, index) =>
      budget.acquire((index + 1) * MIB),
    );
    const smallest = leases[0]!.view.buffer;
    for (const lease of leases) lease.release();
    expect(smallest.byteLength).toBe(0);
    await expect.poll(() => budget.bufferBytes).toBe((2 + 3 + 4 + 5) * MIB);
  });
});
