/**
 * The link codec: `u32 frame length | u32 header length | CBOR header | raw payload`, across
 * arbitrary chunk boundaries, every bound checked before the bytes it governs are buffered, typed
 * errors only. Expected bytes are written out by hand from the layout in docs/protocols.md.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { encodeCbor } from '../../../shared/cbor.ts';
import { isNitroInferError } from '../../../shared/errors.ts';
import {
  FRAME_PAYLOADS,
  MAX_MODEL_CHUNK_PAYLOAD_BYTES,
  REQUEST_HEADER_LIMITS,
} from '../../../shared/frame-layout.ts';
import { FrameDecoder, MAX_FRAME_BYTES, PayloadPieces, encodeFrame } from '../../../shared/frames.ts';
import type { Frame } from '../../../shared/frames.ts';
import { codeOf } from '../../helpers/codes.ts';

const hex = (text: string) => Buffer.from(text.replace(/\s+/g, ''), 'hex');
const joined = (pieces: readonly Uint8Array[]) => Buffer.concat(pieces);

/** A frame around raw header bytes (any CBOR, valid or not) and a payload. */
function rawFrame(header: Uint8Array, payload: Uint8Array = new Uint8Array(0)): Buffer {
  const lengths = Buffer.alloc(8);
  lengths.writeUInt32BE(4 + header.byteLength + payload.byteLength, 0);
  lengths.writeUInt32BE(header.byteLength, 4);
  return Buffer.concat([lengths, header, payload]);
}

const LINK_CODES = [
  'ERR_FRAME_TOO_LARGE',
  'ERR_FRAME_MALFORMED',
  'ERR_FRAME_HEADER_TOO_LARGE',
  'ERR_FRAME_PAYLOAD_REFUSED',
  'ERR_FRAME_PAYLOAD_TOO_LARGE',
  'ERR_FRAME_TRUNCATED',
];

describe('frame layout', () => {
  it('a frame without payload: u32 frame length, u32 header length, CBOR {id, type}', () => {
    // {"id": 7, "type": "status"} = a2 62 6964 07 64 74797065 66 737461747573 (17 bytes); 4 + 17 = 21.
    const pieces = encodeFrame(7, 'status');
    expect(pieces).toHaveLength(1);
    expect(joined(pieces).toString('hex')).toBe(
      '00000015' + '00000011' + 'a262696407647479706566737461747573',
    );
  });

  it('a payload travels out of band, declared by its field name, and is not copied', () => {
    const body = new Uint8Array([1, 2, 3]);
    const pieces = encodeFrame(1, 'ohttp', { body });
    // {"id": 1, "type": "ohttp", "payload": "body"}: a3 (1) 626964 01 (4) 6474797065 656f68747470 (11)
    // 677061796c6f6164 64626f6479 (13) = 29 bytes; frame length 4 + 29 + 3 = 36.
    expect(Buffer.from(pieces[0]).toString('hex')).toBe(
      '00000024' + '0000001d' + 'a3626964016474797065656f68747470677061796c6f616464626f6479',
    );
    expect(pieces[1]).toBe(body);
  });

  it('a byte field of a type without a payload stays in the header', () => {
    const pieces = encodeFrame(1, 'attest', { nonce: new Uint8Array(16) });
    expect(pieces).toHaveLength(1);
  });
});

describe('FrameDecoder', () => {
  const stream = Buffer.concat([
    joined(encodeFrame(1, 'model.chunk', { name: 'm', data: new Uint8Array(300).fill(3) })),
    joined(encodeFrame(2, 'status')),
    joined(encodeFrame(0xffffffff, 'ok', { body: new Uint8Array([1, 2]) })),
  ]);

  it('decodes frames split at every possible boundary, and several per chunk', () => {
    for (let split = 0; split <= stream.byteLength; split++) {
      const decoder = new FrameDecoder();
      const frames = [...decoder.push(stream.subarray(0, split)), ...decoder.push(stream.subarray(split))];
      expect(frames.map((frame) => [frame.id, frame.type])).toEqual([
        [1, 'model.chunk'],
        [2, 'status'],
        [0xffffffff, 'ok'],
      ]);
      const data = frames[0]!.fields.get('data') as Uint8Array;
      expect(Buffer.isBuffer(data)).toBe(false);
      expect(data).toEqual(new Uint8Array(300).fill(3));
      expect(frames[2]!.fields.get('body')).toEqual(new Uint8Array([1, 2]));
      expect([...frames[0]!.fields.keys()]).toEqual(['name', 'data']);
      expect(decoder.bufferedBytes).toBe(0);
      decoder.end();
    }
  });

  it('hands on a payload in one chunk as a view of it, and one spanning chunks as one copy', () => {
    const frame = joined(encodeFrame(1, 'ohttp', { body: new Uint8Array(1000).fill(7) }));
    const [whole] = new FrameDecoder().push(frame);
    const view = whole!.fields.get('body') as Uint8Array;
    expect(view.buffer).toBe(frame.buffer);
    const decoder = new FrameDecoder();
    expect(decoder.push(frame.subarray(0, 500))).toEqual([]);
    const [split] = decoder.push(frame.subarray(500));
    const copy = split!.fields.get('body') as Uint8Array;
    expect(copy.buffer).not.toBe(frame.buffer);
    expect(copy).toEqual(new Uint8Array(1000).fill(7));
  });

  it('asked for pieces, hands on a payload spanning chunks as views of those chunks, never joined', () => {
    // The first frame's 300-byte payload ends its frame: 4 length bytes + the declared length.
    const payloadStart = 4 + stream.readUInt32BE(0) - 300;
    // Its own ArrayBuffer: a join (Buffer.concat) could come from the same pool slab as `stream`.
    const own = new Uint8Array(stream);
    for (let split = 0; split <= stream.byteLength; split++) {
      const decoder = new FrameDecoder({ payloadPieces: true });
      const frames = [...decoder.push(own.subarray(0, split)), ...decoder.push(own.subarray(split))];
      expect(frames.map((frame) => frame.type)).toEqual(['model.chunk', 'status', 'ok']);
      const data = frames[0]!.fields.get('data') as Uint8Array | PayloadPieces;
      const pieces = data instanceof PayloadPieces ? data.pieces : [data];
      for (const piece of pieces) expect(Buffer.isBuffer(piece)).toBe(false);
      if (split > payloadStart && split < payloadStart + 300) {
        // Split inside the payload: views of both chunks (no byte copied), not one joined buffer.
        expect(pieces.map((piece) => piece.byteLength)).toEqual([
          split - payloadStart,
          payloadStart + 300 - split,
        ]);
        for (const piece of pieces) expect(piece.buffer).toBe(own.buffer);
      } else {
        expect(data).toBeInstanceOf(Uint8Array);
      }
      expect(joined(pieces)).toEqual(Buffer.alloc(300, 3));
      expect(data.byteLength).toBe(300);
      expect(decoder.bufferedBytes).toBe(0);
      decoder.end();
    }
  });

  it('sends payload pieces as they are, counted in the frame length and bounded as a whole', () => {
    const pieces = [new Uint8Array([1, 2]), new Uint8Array([3])];
    const frame = encodeFrame(1, 'ohttp', { body: new PayloadPieces(pieces) });
    expect(frame.slice(1)).toEqual(pieces);
    expect(frame[1]).toBe(pieces[0]);
    expect(frame[2]).toBe(pieces[1]);
    // The same bytes as the payload given whole.
    expect(joined(frame)).toEqual(joined(encodeFrame(1, 'ohttp', { body: new Uint8Array([1, 2, 3]) })));
    const half = new Uint8Array(MAX_MODEL_CHUNK_PAYLOAD_BYTES / 2);
    const over = new PayloadPieces([half, half, new Uint8Array(1)]);
    expect(codeOf(() => encodeFrame(1, 'model.chunk', { name: 'm', data: over }))).toBe(
      'ERR_FRAME_PAYLOAD_TOO_LARGE',
    );
    expect(
      codeOf(() => encodeFrame(1, 'model.chunk', { name: 'm', data: new PayloadPieces([half, half]) })),
    ).toBe('accepted');
  });

  it('every truncation of a stream is refused at its end with ERR_FRAME_TRUNCATED', () => {
    const boundaries = new Set<number>([0]);
    let offset = 0;
    while (offset < stream.byteLength) {
      offset += 4 + stream.readUInt32BE(offset);
      boundaries.add(offset);
    }
    for (let length = 0; length <= stream.byteLength; length++) {
      const decoder = new FrameDecoder();
      decoder.push(stream.subarray(0, length));
      expect(codeOf(() => decoder.end())).toBe(boundaries.has(length) ? 'accepted' : 'ERR_FRAME_TRUNCATED');
    }
  });

  it('refuses a declared frame length over the bound before buffering the frame', () => {
    expect(codeOf(() => new FrameDecoder({ maxFrameBytes: 1024 }).push(hex('00000401')))).toBe(
      'ERR_FRAME_TOO_LARGE',
    );
    expect(codeOf(() => new FrameDecoder().push(hex('00000000')))).toBe('ERR_FRAME_TOO_LARGE');
    expect(codeOf(() => new FrameDecoder().push(hex('ffffffff')))).toBe('ERR_FRAME_TOO_LARGE');
    expect(MAX_FRAME_BYTES).toBe(64 * 1024 * 1024);
  });

  it.each([
    ['a header length beyond the frame', '0000000a 00000014'],
    ['a zero header length', '0000000a 00000000'],
    ['a frame too short for a header length', '00000003 000000'],
  ])('refuses %s with ERR_FRAME_MALFORMED', (_name, bytes) => {
    expect(codeOf(() => new FrameDecoder().push(hex(bytes)))).toBe('ERR_FRAME_MALFORMED');
  });

  it('refuses a header over its cap from the 8 length bytes alone (negative control: at the cap)', () => {
    const over = Buffer.alloc(8);
    over.writeUInt32BE(REQUEST_HEADER_LIMITS.maxHeaderBytes + 5, 0);
    over.writeUInt32BE(REQUEST_HEADER_LIMITS.maxHeaderBytes + 1, 4);
    expect(codeOf(() => new FrameDecoder().push(over))).toBe('ERR_FRAME_HEADER_TOO_LARGE');
    const at = Buffer.alloc(8);
    at.writeUInt32BE(REQUEST_HEADER_LIMITS.maxHeaderBytes + 4, 0);
    at.writeUInt32BE(REQUEST_HEADER_LIMITS.maxHeaderBytes, 4);
    expect(codeOf(() => new FrameDecoder().push(at))).toBe('accepted');
  });

  it('bounds the header’s CBOR items, not only its bytes', () => {
    const fields = new Map<string, unknown>([
      ['id', 1],
      ['type', 'status'],
    ]);
    for (let index = 0; fields.size < 40; index++) fields.set(`k${index}`, index);
    const frame = rawFrame(encodeCbor(fields)); // the map and 40 entries: 81 items > 64
    expect(codeOf(() => new FrameDecoder().push(frame))).toBe('ERR_FRAME_MALFORMED');
    try {
      new FrameDecoder().push(frame);
    } catch (error) {
      expect(((error as Error).cause as { code?: string }).code).toBe('ERR_CBOR_LIMIT_EXCEEDED');
    }
    expect(codeOf(() => new FrameDecoder({ maxHeaderItems: 81 }).push(frame))).toBe('accepted');
  });

  const header = (type: string, extra: [string, unknown][] = []) =>
    encodeCbor(new Map<string, unknown>([['id', 1], ['type', type], ...extra]));

  it.each([
    ['a payload declared for a type that carries none', header('status', [['payload', 'body']])],
    ['undeclared bytes after the header', header('status')],
    ['a payload under another field name than its type’s', header('ohttp', [['payload', 'data']])],
    ['a payload declared for an unknown type', header('made.up', [['payload', 'body']])],
  ])('refuses %s with ERR_FRAME_PAYLOAD_REFUSED', (_name, head) => {
    expect(codeOf(() => new FrameDecoder().push(rawFrame(head, new Uint8Array(4))))).toBe(
      'ERR_FRAME_PAYLOAD_REFUSED',
    );
  });

  it('refuses a payload over its type’s bound from the header alone (negative control: at the bound)', () => {
    const declare = (payloadBytes: number) => {
      const head = header('model.chunk', [
        ['payload', 'data'],
        ['name', 'm'],
      ]);
      const lengths = Buffer.alloc(8);
      lengths.writeUInt32BE(4 + head.byteLength + payloadBytes, 0);
      lengths.writeUInt32BE(head.byteLength, 4);
      return Buffer.concat([lengths, head]); // no payload byte is sent
    };
    expect(codeOf(() => new FrameDecoder().push(declare(MAX_MODEL_CHUNK_PAYLOAD_BYTES + 1)))).toBe(
      'ERR_FRAME_PAYLOAD_TOO_LARGE',
    );
    expect(codeOf(() => new FrameDecoder().push(declare(MAX_MODEL_CHUNK_PAYLOAD_BYTES)))).toBe('accepted');
    // Pieces change only how a payload is handed on, not its bound.
    expect(
      codeOf(() =>
        new FrameDecoder({ payloadPieces: true }).push(declare(MAX_MODEL_CHUNK_PAYLOAD_BYTES + 1)),
      ),
    ).toBe('ERR_FRAME_PAYLOAD_TOO_LARGE');
    expect(FRAME_PAYLOADS.get('model.chunk')?.maxBytes).toBe(4 * 1024 * 1024);
  });

  it('refuses to encode a payload over its type’s bound', () => {
    const data = new Uint8Array(MAX_MODEL_CHUNK_PAYLOAD_BYTES + 1);
    expect(codeOf(() => encodeFrame(1, 'model.chunk', { name: 'm', data }))).toBe(
      'ERR_FRAME_PAYLOAD_TOO_LARGE',
    );
  });

  it.each([
    ['not a map', '8201 02'],
    ['no id', 'a1 64 74797065 62 6f6b'],
    ['a negative id', 'a2 62 6964 20 64 74797065 62 6f6b'],
    ['an id over u32', 'a2 62 6964 1b 0000000100000000 64 74797065 62 6f6b'],
    ['a type with capitals', 'a2 62 6964 01 64 74797065 62 4f4b'],
    ['an integer key', 'a3 62 6964 01 64 74797065 62 6f6b 01 02'],
    ['trailing bytes inside the header', 'a2 62 6964 01 64 74797065 62 6f6b 00'],
    [
      'the payload field also in the header',
      'a4 62 6964 01 64 74797065 62 6f6b 67 7061796c6f6164 64 626f6479 64 626f6479 40',
    ],
  ])('refuses a header with %s as ERR_FRAME_MALFORMED', (_name, head) => {
    expect(codeOf(() => new FrameDecoder().push(rawFrame(hex(head))))).toBe('ERR_FRAME_MALFORMED');
  });

  it('waits for admission before buffering a payload, and resumes on the next push', () => {
    let allow = false;
    const asked: number[] = [];
    const decoder = new FrameDecoder({
      admit: (bytes) => {
        asked.push(bytes);
        return allow;
      },
    });
    const frame = joined(encodeFrame(3, 'ohttp', { body: new Uint8Array(100) }));
    expect(decoder.push(frame)).toEqual([]);
    expect(asked).toEqual([frame.byteLength]);
    allow = true;
    const frames: Frame[] = decoder.push();
    expect(frames.map((entry) => entry.id)).toEqual([3]);
  });

  it('arbitrary byte streams give frames or typed errors, nothing else', () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 64 }), { maxLength: 8 }), (chunks) => {
        const decoder = new FrameDecoder({ maxFrameBytes: 4096 });
        try {
          for (const chunk of chunks) decoder.push(chunk);
          decoder.end();
        } catch (error) {
          return isNitroInferError(error) && LINK_CODES.includes(error.code);
        }
        return true;
      }),
      { numRuns: 10_000, interruptAfterTimeLimit: 3_000 },
    );
  });

  it('arbitrary headers and payloads inside valid lengths give frames or typed errors', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 1, maxLength: 64 }),
        fc.uint8Array({ maxLength: 16 }),
        (head, payload) => {
          try {
            new FrameDecoder().push(rawFrame(head, payload));
          } catch (error) {
            return isNitroInferError(error) && LINK_CODES.includes(error.code);
          }
          return true;
        },
      ),
      { numRuns: 10_000, interruptAfterTimeLimit: 3_000 },
    );
  });

  it('encode → decode → encode gives identical bytes', () => {
    const type = fc.oneof(
      fc.stringMatching(/^[a-z][a-z0-9.]{0,31}$/),
      fc.constantFrom(...FRAME_PAYLOADS.keys()),
    );
    fc.assert(
      fc.property(
        fc.nat({ max: 0xffffffff }),
        type,
        fc.dictionary(
          fc.stringMatching(/^[a-z]{1,8}$/).filter((key) => !['id', 'type', 'payload'].includes(key)),
          fc.oneof(fc.integer(), fc.string(), fc.uint8Array({ maxLength: 32 })),
        ),
        (id, frameType, fields) => {
          const once = joined(encodeFrame(id, frameType, fields));
          const [frame] = new FrameDecoder().push(once);
          expect(frame!.id).toBe(id);
          expect(frame!.type).toBe(frameType);
          expect(Object.fromEntries(frame!.fields)).toEqual(fields);
          const twice = joined(encodeFrame(frame!.id, frame!.type, Object.fromEntries(frame!.fields)));
          expect(twice.toString('hex')).toBe(once.toString('hex'));
        },
      ),
      { numRuns: 1_000 },
    );
  });
});
