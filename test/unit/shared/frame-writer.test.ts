/** The frame writer: small frames coalesced into ≥ 32 KiB writes, a large frame's pieces sent corked (one writev), never joined. */
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { COALESCE_BYTES, FrameWriter } from '../../../shared/frame-writer.ts';
import { FrameDecoder, encodeFrame } from '../../../shared/frames.ts';

/** A stream that records each write and each writev as the list of buffers it was given. */
function recorder(): { stream: Writable; calls: Uint8Array[][] } {
  const calls: Uint8Array[][] = [];
  const stream = new Writable({
    highWaterMark: 1 << 30,
    write(chunk: Buffer, _encoding, callback) {
      calls.push([chunk]);
      callback();
    },
    writev(chunks, callback) {
      calls.push(chunks.map((entry) => entry.chunk as Buffer));
      callback();
    },
  });
  return { stream, calls };
}

describe('FrameWriter', () => {
  it('sends a large frame as its two pieces in one writev, the payload not copied', () => {
    const { stream, calls } = recorder();
    const body = new Uint8Array(COALESCE_BYTES * 4).fill(5);
    new FrameWriter(stream).write(encodeFrame(9, 'ohttp', { body }));
    expect(calls).toHaveLength(1);
    expect(calls[0]).toHaveLength(2);
    expect((calls[0]![1] as Uint8Array).buffer).toBe(body.buffer);
    const [frame] = new FrameDecoder().push(Buffer.concat(calls[0]!));
    expect(frame!.fields.get('body')).toEqual(body);
  });

  it('coalesces small frames written in one turn into one write, in order', async () => {
    const { stream, calls } = recorder();
    const writer = new FrameWriter(stream);
    for (let id = 1; id <= 10; id++)
      writer.write(encodeFrame(id, 'ok', { body: new Uint8Array(100).fill(id) }));
    expect(calls).toHaveLength(0);
    await new Promise((resolve) => setImmediate(resolve));
    expect(calls).toHaveLength(1);
    const frames = new FrameDecoder().push(Buffer.concat(calls.flat()));
    expect(frames.map((frame) => frame.id)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  });

  it('writes pending small frames before a large one, in the same corked batch', () => {
    const { stream, calls } = recorder();
    const writer = new FrameWriter(stream);
    writer.write(encodeFrame(1, 'status'));
    writer.write(encodeFrame(2, 'ohttp', { body: new Uint8Array(COALESCE_BYTES) }));
    expect(calls).toHaveLength(1);
    const frames = new FrameDecoder().push(Buffer.concat(calls.flat()));
    expect(frames.map((frame) => frame.id)).toEqual([1, 2]);
  });
});
