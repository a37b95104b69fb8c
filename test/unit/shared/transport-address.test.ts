/** Transport addresses: the three forms parse, anything else is ERR_TRANSPORT_ADDRESS_INVALID. */
import { describe, expect, it } from 'vitest';
import {
  VSOCK_CID_ANY,
  formatTransportAddress,
  parseTransportAddress,
} from '../../../shared/transport-address.ts';
import { codeOf } from '../../helpers/codes.ts';

describe('transport addresses', () => {
  it.each([
    ['vsock:16:5000', { kind: 'vsock', cid: 16, port: 5000 }],
    ['vsock:any:5000', { kind: 'vsock', cid: VSOCK_CID_ANY, port: 5000 }],
    ['vsock:3:8000', { kind: 'vsock', cid: 3, port: 8000 }],
    ['unix:/run/nitro/enclave.sock', { kind: 'unix', path: '/run/nitro/enclave.sock' }],
    ['tcp:127.0.0.1:8000', { kind: 'tcp', host: '127.0.0.1', port: 8000 }],
    ['tcp:[::1]:443', { kind: 'tcp', host: '::1', port: 443 }],
  ])('%s parses and formats back', (text, expected) => {
    const parsed = parseTransportAddress(text);
    expect(parsed).toEqual(expected);
    expect(formatTransportAddress(parsed)).toBe(text);
  });

  it.each([
    'vsock:16',
    'vsock:-1:5000',
    'vsock:4294967296:1',
    'vsock:3:4294967295',
    'unix:',
    `unix:/${'a'.repeat(107)}`,
    'unix:/tmp/a\0b',
    'tcp:host:0',
    'tcp:host:65536',
    'tcp:host',
    'tcp:bad host:80',
    'http://x',
    '',
  ])('%j is refused', (text) => {
    expect(codeOf(() => parseTransportAddress(text))).toBe('ERR_TRANSPORT_ADDRESS_INVALID');
  });
});
