/**
 * The real NSM path: request encodings byte for byte (written out by hand from the nsm-api serde
 * layout), and the ioctl marshalling through koffi against a C stand-in built here. /dev/nsm is
 * never opened.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import koffi from 'koffi';
import { afterAll, describe, expect, it } from 'vitest';
import { DeviceNsm, NSM_IOCTL_REQUEST } from '../../../../enclave/nsm/device-nsm.ts';
import {
  decodeDescribePcrResponse,
  encodeAttestationRequest,
  encodeDescribePcrRequest,
  encodeExtendPcrRequest,
  encodeGetRandomRequest,
  encodeLockPcrRequest,
  encodeLockPcrsRequest,
} from '../../../../enclave/nsm/nsm-codec.ts';
import { PROJECT_ROOT } from '../../../helpers/fixtures.ts';
import { codeOfAsync } from '../../../helpers/codes.ts';

const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString('hex');
const bytes = (text: string) => new Uint8Array(Buffer.from(text.replace(/\s+/g, ''), 'hex'));
const ascii = (text: string) => Buffer.from(text).toString('hex');

describe('NSM request encodings (serde externally tagged CBOR)', () => {
  it.each([
    [
      'Attestation, all fields absent',
      encodeAttestationRequest({}),
      `a1 6b${ascii('Attestation')} a3 69${ascii('user_data')} f6 65${ascii('nonce')} f6 6a${ascii('public_key')} f6`,
    ],
    [
      'Attestation with nonce and public key',
      encodeAttestationRequest({ nonce: bytes('0102'), publicKey: bytes('ff') }),
      `a1 6b${ascii('Attestation')} a3 69${ascii('user_data')} f6 65${ascii('nonce')} 42 0102 6a${ascii('public_key')} 41 ff`,
    ],
    ['DescribePCR 3', encodeDescribePcrRequest(3), `a1 6b${ascii('DescribePCR')} a1 65${ascii('index')} 03`],
    [
      'ExtendPCR 16',
      encodeExtendPcrRequest(16, bytes('aa')),
      `a1 69${ascii('ExtendPCR')} a2 65${ascii('index')} 10 64${ascii('data')} 41 aa`,
    ],
    ['LockPCR 16', encodeLockPcrRequest(16), `a1 67${ascii('LockPCR')} a1 65${ascii('index')} 10`],
    ['LockPCRs 16', encodeLockPcrsRequest(16), `a1 68${ascii('LockPCRs')} a1 65${ascii('range')} 10`],
    ['GetRandom', encodeGetRandomRequest(), `69${ascii('GetRandom')}`],
  ])('%s', (_name, encoded, expected) => {
    expect(hex(encoded)).toBe(expected.replace(/\s+/g, ''));
  });

  it('decodes responses and maps NSM errors to codes', () => {
    const describe = bytes(
      `a1 6b${ascii('DescribePCR')} a2 64${ascii('lock')} f5 64${ascii('data')} 58 30 ${'ab'.repeat(48)}`,
    );
    expect(decodeDescribePcrResponse(describe)).toEqual({
      locked: true,
      data: new Uint8Array(48).fill(0xab),
    });
    expect(() =>
      decodeDescribePcrResponse(bytes(`a1 65${ascii('Error')} 6d${ascii('ReadOnlyIndex')}`)),
    ).toThrow(expect.objectContaining({ code: 'ERR_NSM_READ_ONLY_INDEX' }));
    expect(() =>
      decodeDescribePcrResponse(bytes(`a1 65${ascii('Error')} 6f${ascii('InvalidArgument')}`)),
    ).toThrow(expect.objectContaining({ code: 'ERR_NSM_INVALID_ARGUMENT' }));
    expect(() => decodeDescribePcrResponse(bytes('a0'))).toThrow(
      expect.objectContaining({ code: 'ERR_NSM_INTERNAL' }),
    );
  });

  it('refuses requests larger than the driver takes', () => {
    expect(() => encodeExtendPcrRequest(16, new Uint8Array(5000))).toThrow(
      expect.objectContaining({ code: 'ERR_NSM_INPUT_TOO_LARGE' }),
    );
  });
});

const haveCompiler = (() => {
  try {
    execFileSync('cc', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();
const CI = process.env.CI === 'true';

describe.skipIf(!haveCompiler && !CI)('DeviceNsm through koffi against a C stand-in for the driver', () => {
  const directory = mkdtempSync(path.join(os.tmpdir(), 'nitro-infer-fake-nsm-'));
  const library = path.join(directory, 'libfakensm.so');
  execFileSync('cc', [
    '-shared',
    '-fPIC',
    '-O1',
    '-o',
    library,
    path.join(PROJECT_ROOT, 'test/helpers/native/fake-nsm.c'),
  ]);
  const fake = koffi.load(library);
  const setResponse = fake.func('void fake_set_response(const uint8_t *bytes, size_t length)');
  const setErrno = fake.func('void fake_set_errno(int value)');
  const lastRequest = fake.func('size_t fake_last_request(_Out_ uint8_t *out)');
  const lastCode = fake.func('unsigned long fake_last_code(void)');
  const lastFd = fake.func('int fake_last_fd(void)');
  const nsm = DeviceNsm.open({ libraryPath: library, devicePath: '/nonexistent/nsm' });
  afterAll(() => {
    nsm.close();
    rmSync(directory, { recursive: true, force: true });
  });

  function recorded(): Uint8Array {
    const out = Buffer.alloc(8192);
    const length = lastRequest(out) as number;
    return new Uint8Array(out.subarray(0, length));
  }

  it('sends the CBOR request in the request iovec, with the NSM ioctl code, and reads the response iovec', async () => {
    const document = new Uint8Array(3000).map((_, index) => index % 251);
    const response = bytes(`a1 6b${ascii('Attestation')} a1 68${ascii('document')} 59 0bb8 ${hex(document)}`);
    setResponse(response, response.byteLength);
    const nonce = new Uint8Array(32).fill(7);
    expect(await nsm.attest({ nonce })).toEqual(document);
    expect(hex(recorded())).toBe(hex(encodeAttestationRequest({ nonce })));
    expect(Number(lastCode())).toBe(NSM_IOCTL_REQUEST);
    expect(lastFd()).toBe(42);
  });

  it('turns NSM error responses into typed errors', async () => {
    const response = bytes(`a1 65${ascii('Error')} 6d${ascii('ReadOnlyIndex')}`);
    setResponse(response, response.byteLength);
    expect(await codeOfAsync(() => nsm.extendPcr(0, new Uint8Array([1])))).toBe('ERR_NSM_READ_ONLY_INDEX');
    expect(hex(recorded())).toBe(hex(encodeExtendPcrRequest(0, new Uint8Array([1]))));
  });

  it('reads random bytes and unit responses', async () => {
    const random = new Uint8Array(256).fill(0x5a);
    const response = bytes(`a1 69${ascii('GetRandom')} a1 66${ascii('random')} 59 0100 ${hex(random)}`);
    setResponse(response, response.byteLength);
    expect(await nsm.getRandom()).toEqual(random);
    const locked = bytes(`67${ascii('LockPCR')}`);
    setResponse(locked, locked.byteLength);
    await nsm.lockPcr(16);
    expect(await codeOfAsync(() => nsm.lockPcrs(16))).toBe('ERR_NSM_INTERNAL'); // a LockPCR answer to LockPCRs is refused
  });

  it('reports a failing ioctl as a typed error, not a crash', async () => {
    setErrno(5); // EIO
    expect(await codeOfAsync(() => nsm.getRandom())).toBe('ERR_NSM_INTERNAL');
    setErrno(0);
  });

  it('refuses oversized inputs before calling the driver', async () => {
    expect(await codeOfAsync(() => nsm.attest({ userData: new Uint8Array(1025) }))).toBe(
      'ERR_NSM_INPUT_TOO_LARGE',
    );
  });
});
