/**
 * Binary HTTP forms the RFC 9292 examples leave out: indeterminate-length content in several
 * chunks, informational responses and their bound, status range, field-section bounds and field
 * text rules. Bytes are written by hand from RFC 9292 sections 3.1–3.8.
 */
import { describe, expect, it } from 'vitest';
import {
  MAX_INFORMATIONAL_RESPONSES,
  decodeBhttpRequest,
  decodeBhttpResponse,
} from '../../../../shared/ohttp/bhttp.ts';
import { codeOf } from '../../../helpers/codes.ts';

const hex = (text: string): Uint8Array => new Uint8Array(Buffer.from(text.replaceAll(' ', ''), 'hex'));

describe('Binary HTTP framing', () => {
  it('an indeterminate-length response joins its content chunks', () => {
    // framing 3, status 200 (40c8), field a: b, end of fields, chunks "hi" and "!", end, no trailers.
    const response = decodeBhttpResponse(hex('03 40c8 0161 0162 00 02 6869 01 21 00 00'));
    expect(response.status).toBe(200);
    expect(response.headers).toEqual([['a', 'b']]);
    expect(Buffer.from(response.content).toString()).toBe('hi!');
    expect(response.trailers).toEqual([]);
  });

  it('an indeterminate-length request with empty sections', () => {
    // framing 2, GET, https, empty authority, "/", no fields, no content, no trailers.
    const request = decodeBhttpRequest(hex('02 03474554 056874747073 00 012f 00 00 00'));
    expect(request).toMatchObject({ method: 'GET', scheme: 'https', authority: '', path: '/' });
    expect(request.content.byteLength).toBe(0);
  });

  it('a known-length response with a 103 before its 200', () => {
    const response = decodeBhttpResponse(hex('01 4067 00 40c8 00 00 00'));
    expect(response.informational).toEqual([{ status: 103, headers: [] }]);
    expect(response.status).toBe(200);
  });

  it.each<[string, string]>([
    [
      `${MAX_INFORMATIONAL_RESPONSES + 1} informational responses`,
      `01 ${'4067 00 '.repeat(MAX_INFORMATIONAL_RESPONSES + 1)} 40c8 00 00 00`,
    ],
    ['status 99', '01 4063 00 00 00'],
    ['status 600', '01 4258 00 00 00'],
    ['a request framing indicator', '00 40c8 00 00 00'],
    ['an unterminated indeterminate field section', '03 40c8 0161 0162'],
    ['an uppercase field name', '01 40c8 04 0141 0162 00 00'],
    ['a field name that is not a token', '01 40c8 04 0120 0162 00 00'],
    ['a field value that is not UTF-8', '01 40c8 04 0161 01ff 00 00'],
    ['a field section longer than what remains', '01 40c8 09 0161 0162 00 00'],
  ])('refuses %s with ERR_BHTTP_MALFORMED', (_what, bytes) => {
    expect(codeOf(() => decodeBhttpResponse(hex(bytes)))).toBe('ERR_BHTTP_MALFORMED');
  });

  it('refuses an indeterminate field section past 64 KiB', () => {
    // Five fields of 16,383-byte values (varint 7fff) add up to ~80 KiB.
    const field = `0161 7fff ${'62'.repeat(16_383)}`;
    const bytes = hex(`03 40c8 ${field.repeat(5)} 00 00 00`);
    expect(codeOf(() => decodeBhttpResponse(bytes))).toBe('ERR_BHTTP_MALFORMED');
  });

  it.each<[string, string]>([
    ['a response framing indicator', '01 03474554 00 00 00'],
    ['a method that is not a token', '00 03474520 056874747073 00 012f 00 00 00'],
    ['a scheme that is not UTF-8', '00 03474554 01ff 00 012f 00 00 00'],
  ])('refuses a request with %s', (_what, bytes) => {
    expect(codeOf(() => decodeBhttpRequest(hex(bytes)))).toBe('ERR_BHTTP_MALFORMED');
  });
});
