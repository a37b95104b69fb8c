/**
 * The link's coalescing writer (DESIGN.md 4.5): small frames of one event-loop turn leave as one
 * write, large ones uncopied, nothing is written to a destroyed stream, and back-pressure reaches
 * the caller. Writes are counted, never timed.
 */
import { Writable } from 'node:stream';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { COALESCE_BYTES, FrameWriter } from '../../../shared/frame-writer.ts';

/** A sink that records each write; with `hold`, it acknowledges none until `release()`. */
function sink(options: { hold?: boolean; highWaterMark?: number } = {}) {
  const writes: Buffer[] = [];
  const held: (() => void)[] = [];
  const stream = new Writable({
    highWaterMark: options.highWaterMark ?? 1024 * 1024,
    write(chunk: Buffer, _encoding, callback) {
      writes.push(chunk);
      if (options.hold === true) held.push(() => callback());
      else callback();
    },
  });
  const release = () => held.splice(0).forEach((callback) => callback());
  return { stream, writes, release };
}

describe('FrameWriter', () => {
  it('frames written in one turn leave as one write, in order', async () => {
    const { stream, writes } = sink();
    const writer = new FrameWriter(stream);
    expect(writer.write(Buffer.from('ab'))).toBe(true);
    writer.write(Buffer.from('cd'));
    writer.write(Buffer.from('e'));
    expect(writes).toEqual([]);
    await nextTurn();
    expect(writes.map(String)).toEqual(['abcde']);
  });

  it('a single pending frame is written as it is, without a copy', async () => {
    const { stream, writes } = sink();
    const frame = Buffer.from('only');
    new FrameWriter(stream).write(frame);
    await nextTurn();
    expect(writes[0]?.buffer).toBe(frame.buffer);
  });

  it('a large frame flushes what is pending, then goes out uncopied', () => {
    const { stream, writes } = sink();
    const writer = new FrameWriter(stream);
    writer.write(Buffer.from('small'));
    const large = Buffer.alloc(COALESCE_BYTES, 1);
    writer.write(large);
    expect(writes.map((write) => write.byteLength)).toEqual([5, COALESCE_BYTES]);
    expect(writes[1]).toBe(large);
  });

  it('pending bytes reaching COALESCE_BYTES are written at once', () => {
    const { stream, writes } = sink();
    const writer = new FrameWriter(stream);
    writer.write(Buffer.alloc(COALESCE_BYTES / 2));
    expect(writes).toEqual([]);
    writer.write(Buffer.alloc(COALESCE_BYTES / 2));
    expect(writes.map((write) => write.byteLength)).toEqual([COALESCE_BYTES]);
  });

  it('writes nothing to a destroyed stream', async () => {
    const { stream, writes } = sink();
    const writer = new FrameWriter(stream);
    writer.write(Buffer.from('queued'));
    stream.destroy();
    expect(writer.write(Buffer.from('late'))).toBe(false);
    writer.flush();
    await nextTurn();
    expect(writes).toEqual([]);
    await writer.drained();
  });

  it('reports back-pressure, and every waiter resumes on one drain', async () => {
    const { stream, release } = sink({ hold: true, highWaterMark: 16 });
    const writer = new FrameWriter(stream);
    await writer.drained(); // nothing pending: resolves at once
    expect(writer.write(Buffer.alloc(COALESCE_BYTES))).toBe(false);
    expect(writer.write(Buffer.from('x'))).toBe(false);
    let resumed = 0;
    const waiters = [writer.drained(), writer.drained()].map((wait) => wait.then(() => (resumed += 1)));
    await nextTurn();
    expect(resumed).toBe(0);
    expect(stream.listenerCount('drain')).toBe(1);
    release();
    await nextTurn();
    release();
    await Promise.all(waiters);
    expect(resumed).toBe(2);
    expect(stream.listenerCount('drain')).toBe(0);
  });

  it('a waiter resumes when the stream closes instead of draining', async () => {
    const { stream } = sink({ hold: true, highWaterMark: 16 });
    const writer = new FrameWriter(stream);
    writer.write(Buffer.alloc(COALESCE_BYTES));
    const waiting = writer.drained();
    stream.destroy();
    await waiting;
    expect(stream.listenerCount('close')).toBe(0);
  });
});
