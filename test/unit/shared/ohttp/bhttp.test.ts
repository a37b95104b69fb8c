/**
 * Binary HTTP against every RFC 9292 example (and the RFC 9458 Appendix A messages), the truncated
 * and padded variants the RFC says mean the same, round trips of our known-length encoder, and
 * fast-check over the decoders: arbitrary bytes throw only our typed errors, prefixes never crash.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  decodeBhttpRequest,
  decodeBhttpResponse,
  encodeBhttpRequest,
  encodeBhttpResponse,
} from '../../../../shared/ohttp/bhttp.ts';
import type { BhttpRequest, BhttpResponse } from '../../../../shared/ohttp/bhttp.ts';
import { isNitroInferError } from '../../../../shared/errors.ts';
import { FIXTURES_DIR } from '../../../helpers/fixtures.ts';
import { codeOf } from '../../../helpers/codes.ts';

const FILE = path.join(FIXTURES_DIR, 'ohttp', 'rfc9292-examples.json');
const HAVE = existsSync(FILE);
if (!HAVE) console.warn(`*** ${FILE} absent (set NITRO_FIXTURES_DIR): RFC 9292 example tests skipped ***`);

interface Example {
  id: string;
  framing_indicator: number;
  hex: string;
  equivalent_to?: string;
  decoded?: {
    method?: string;
    scheme?: string;
    authority?: string;
    path?: string;
    status?: number;
    informational?: { status: number; headers: [string, string][] }[];
    headers: [string, string][];
    content_hex: string;
    trailers: [string, string][];
  };
}
const file = HAVE
  ? (JSON.parse(readFileSync(FILE, 'utf8')) as { examples: Example[]; derived_variants: Example[] })
  : undefined;
const examples = file?.examples ?? [];
const variants = file?.derived_variants ?? [];
const bytes = (hex: string) => new Uint8Array(Buffer.from(hex, 'hex'));

function semantic(message: BhttpRequest | BhttpResponse) {
  return {
    ...message,
    content: Buffer.from(message.content).toString('hex'),
    headers: message.headers.map((field) => [...field]),
    trailers: message.trailers.map((field) => [...field]),
  };
}

function expected(example: Example) {
  const decoded = example.decoded!;
  const base = { headers: decoded.headers, content: decoded.content_hex, trailers: decoded.trailers };
  return example.framing_indicator % 2 === 0
    ? {
        method: decoded.method,
        scheme: decoded.scheme,
        authority: decoded.authority,
        path: decoded.path,
        ...base,
      }
    : {
        informational: (decoded.informational ?? []).map((entry) => ({
          status: entry.status,
          headers: entry.headers,
        })),
        status: decoded.status,
        ...base,
      };
}

const decode = (example: { framing_indicator: number; hex: string }) =>
  example.framing_indicator % 2 === 0
    ? decodeBhttpRequest(bytes(example.hex))
    : decodeBhttpResponse(bytes(example.hex));

describe.skipIf(!HAVE)('RFC 9292 examples', () => {
  it.each(examples.map((example) => [example.id, example] as const))(
    '%s decodes to its HTTP message',
    (_id, example) => {
      const message = decode(example);
      expect(semantic(message)).toEqual(expected(example));
      const informational = (message as BhttpResponse).informational;
      if (informational !== undefined) {
        expect(
          informational.map((entry) => ({ ...entry, headers: entry.headers.map((field) => [...field]) })),
        ).toEqual((expected(example) as { informational: unknown }).informational);
      }
    },
  );

  it.each(
    examples
      .filter((example) => example.framing_indicator < 2)
      .map((example) => [example.id, example] as const),
  )('%s re-encodes byte for byte (known-length)', (_id, example) => {
    const message = decode(example);
    const encoded =
      example.framing_indicator === 0
        ? encodeBhttpRequest(message as BhttpRequest)
        : encodeBhttpResponse(message as BhttpResponse);
    expect(Buffer.from(encoded).toString('hex')).toBe(example.hex);
  });

  it.each(variants.map((variant) => [variant.id, variant] as const))(
    '%s means the same as its original',
    (_id, variant) => {
      const original = examples.find((example) => example.id === variant.equivalent_to)!;
      expect(semantic(decode(variant))).toEqual(semantic(decode(original)));
    },
  );
});

describe.skipIf(HAVE)('RFC 9292 examples', () => {
  it.skip(`${FILE} absent (set NITRO_FIXTURES_DIR)`, () => {});
});

describe('Binary HTTP codec', () => {
  const request: BhttpRequest = {
    method: 'POST',
    scheme: 'https',
    authority: 'enclave',
    path: '/v2/models/dense/infer',
    headers: [['content-type', 'application/json']],
    content: new TextEncoder().encode('{"inputs":[]}'),
    trailers: [],
  };

  it('round-trips with padding, and refuses non-zero bytes after the message', () => {
    const padded = encodeBhttpRequest(request, 100);
    expect(semantic(decodeBhttpRequest(padded))).toEqual(semantic(request));
    padded[padded.byteLength - 1] = 1;
    expect(codeOf(() => decodeBhttpRequest(padded))).toBe('ERR_BHTTP_MALFORMED');
  });

  it.each([
    ['a response as a request', () => decodeBhttpRequest(Uint8Array.of(1, 0x40, 0xc8))],
    ['a status below 100', () => decodeBhttpResponse(Uint8Array.of(1, 0x32))],
    ['a status above 599', () => decodeBhttpResponse(Uint8Array.of(1, 0x42, 0x58))],
    [
      'an uppercase field name',
      () => decodeBhttpRequest(encodeBhttpRequest({ ...request, headers: [] }).map((byte) => byte)),
    ],
  ])('refuses %s', (name, action) => {
    if (name === 'an uppercase field name') {
      const encoded = encodeBhttpRequest(request);
      const index = Buffer.from(encoded).indexOf('content-type');
      encoded[index] = 'C'.charCodeAt(0);
      expect(codeOf(() => decodeBhttpRequest(encoded))).toBe('ERR_BHTTP_MALFORMED');
      return;
    }
    expect(codeOf(action)).toBe('ERR_BHTTP_MALFORMED');
  });

  it('every prefix of a request either decodes (truncation) or fails with ERR_BHTTP_MALFORMED', () => {
    const encoded = encodeBhttpRequest(request);
    for (let length = 0; length < encoded.byteLength; length++) {
      expect(['accepted', 'ERR_BHTTP_MALFORMED']).toContain(
        codeOf(() => decodeBhttpRequest(encoded.subarray(0, length))),
      );
    }
  });

  it('fast-check: arbitrary bytes throw only typed errors; encode→decode→encode is stable', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (input) => {
        for (const decoder of [decodeBhttpRequest, decodeBhttpResponse]) {
          try {
            decoder(input);
          } catch (error) {
            if (!isNitroInferError(error)) throw error;
          }
        }
      }),
      { numRuns: 3000, interruptAfterTimeLimit: 4000 },
    );
    const token = fc.stringMatching(/^[a-z][a-z0-9-]{0,15}$/);
    fc.assert(
      fc.property(
        token,
        fc.string({ maxLength: 40 }),
        fc.array(fc.tuple(token, fc.string({ maxLength: 30 })), { maxLength: 5 }),
        fc.uint8Array({ maxLength: 200 }),
        (method, pathText, headers, content) => {
          const message: BhttpRequest = {
            method: method.toUpperCase(),
            scheme: 'https',
            authority: '',
            path: `/${pathText}`,
            headers,
            content,
            trailers: [],
          };
          const encoded = encodeBhttpRequest(message);
          expect(encodeBhttpRequest(decodeBhttpRequest(encoded))).toEqual(encoded);
        },
      ),
      { numRuns: 500, interruptAfterTimeLimit: 3000 },
    );
  });
});
