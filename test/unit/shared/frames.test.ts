/** The link codec: frames across arbitrary chunk boundaries, bounds before buffering, typed errors only. */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { FrameDecoder, MAX_FRAME_BYTES, encodeFrame, parseFrame } from '../../../shared/frames.ts';
import { isNitroInferError } from '../../../shared/errors.ts';
import { codeOf } from '../../helpers/codes.ts';

describe('link frames', () => {
  it('a frame is a big-endian u32 length and a CBOR map with id and type', () => {
    // {"id": 7, "type": "status"} = a2 62 6964 07 64 74797065 66 737461747573 (17 bytes)
    expect(encodeFrame(7, 'status').toString('hex')).toBe('00000011a262696407647479706566737461747573');
  });

  it('decodes frames split at every possible boundary, and several per chunk', () => {
    const stream = Buffer.concat([
      encodeFrame(1, 'model.chunk', { name: 'm', data: new Uint8Array(300).fill(3) }),
      encodeFrame(2, 'status'),
      encodeFrame(0xffffffff, 'ok', { body: new Uint8Array([1, 2]) }),
    ]);
    for (let split = 0; split <= stream.byteLength; split++) {
      const decoder = new FrameDecoder();
      const frames = [...decoder.push(stream.subarray(0, split)), ...decoder.push(stream.subarray(split))];
      expect(frames.map((frame) => [frame.id, frame.type])).toEqual([
        [1, 'model.chunk'],
        [2, 'status'],
        [0xffffffff, 'ok'],
      ]);
      expect(frames[0]!.fields.get('data')).toEqual(new Uint8Array(300).fill(3));
      expect(decoder.bufferedBytes).toBe(0);
    }
  });

  it('refuses a declared length over the bound before buffering the body', () => {
    const decoder = new FrameDecoder(1024);
    expect(codeOf(() => decoder.push(Buffer.from([0, 0, 4, 1])))).toBe('ERR_FRAME_TOO_LARGE');
    expect(codeOf(() => new FrameDecoder().push(Buffer.from([0, 0, 0, 0])))).toBe('ERR_FRAME_TOO_LARGE');
    expect(codeOf(() => new FrameDecoder().push(Buffer.from([0xff, 0xff, 0xff, 0xff])))).toBe(
      'ERR_FRAME_TOO_LARGE',
    );
    expect(MAX_FRAME_BYTES).toBe(64 * 1024 * 1024);
  });

  it.each([
    ['not a map', '8201 02'],
    ['no id', 'a1 64 74797065 62 6f6b'],
    ['a negative id', 'a2 62 6964 20 64 74797065 62 6f6b'],
    ['an id over u32', 'a2 62 6964 1b 0000000100000000 64 74797065 62 6f6b'],
    ['a type with capitals', 'a2 62 6964 01 64 74797065 62 4f4b'],
    ['an integer key', 'a3 62 6964 01 64 74797065 62 6f6b 01 02'],
    ['trailing bytes', 'a2 62 6964 01 64 74797065 62 6f6b 00'],
  ])('refuses a frame body with %s as ERR_FRAME_MALFORMED', (_name, body) => {
    expect(codeOf(() => parseFrame(Buffer.from(body.replace(/\s+/g, ''), 'hex')))).toBe(
      'ERR_FRAME_MALFORMED',
    );
  });

  it('arbitrary byte streams give frames or typed errors, nothing else', () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 64 }), { maxLength: 8 }), (chunks) => {
        const decoder = new FrameDecoder(4096);
        try {
          for (const chunk of chunks) decoder.push(chunk);
        } catch (error) {
          return (
            isNitroInferError(error) && ['ERR_FRAME_TOO_LARGE', 'ERR_FRAME_MALFORMED'].includes(error.code)
          );
        }
        return true;
      }),
      { numRuns: 10_000, interruptAfterTimeLimit: 3_000 },
    );
  });

  it('encode → decode gives back id, type and fields', () => {
    fc.assert(
      fc.property(
        fc.nat({ max: 0xffffffff }),
        fc.stringMatching(/^[a-z][a-z0-9.]{0,31}$/),
        fc.dictionary(
          fc.stringMatching(/^[a-z]{1,8}$/).filter((key) => key !== 'id' && key !== 'type'),
          fc.oneof(fc.integer(), fc.string(), fc.uint8Array({ maxLength: 32 })),
        ),
        (id, type, fields) => {
          const [frame] = new FrameDecoder().push(encodeFrame(id, type, fields));
          expect(frame!.id).toBe(id);
          expect(frame!.type).toBe(type);
          expect(Object.fromEntries(frame!.fields)).toEqual(fields);
        },
      ),
      { numRuns: 1_000 },
    );
  });
});
