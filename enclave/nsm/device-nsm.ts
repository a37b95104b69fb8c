/**
 * The real Nitro Secure Module: `/dev/nsm`, one ioctl carrying `{ iovec request; iovec response; }`
 * (aws-nitro-enclaves-nsm-api `driver`), called through koffi. Calls run on koffi's worker threads
 * (`.async`), never on the event loop. Selected when `/dev/nsm` exists; tests drive the same code
 * against a stand-in library and never open the device.
 */
import { existsSync } from 'node:fs';
import koffi from 'koffi';
import type { LibraryHandle } from 'koffi';

type KoffiFunction = ReturnType<LibraryHandle['func']>;
import { NsmError } from '../../shared/errors.ts';
import type { AttestationRequest, Nsm, NsmDescription, PcrDescription } from './nsm.ts';
import { NSM_MAX_INPUT_BYTES } from './nsm.ts';
import {
  NSM_RESPONSE_MAX_BYTES,
  decodeAttestationResponse,
  decodeDescribeNsmResponse,
  decodeDescribePcrResponse,
  decodeExtendPcrResponse,
  decodeGetRandomResponse,
  decodeUnitResponse,
  encodeAttestationRequest,
  encodeDescribeNsmRequest,
  encodeDescribePcrRequest,
  encodeExtendPcrRequest,
  encodeGetRandomRequest,
  encodeLockPcrRequest,
  encodeLockPcrsRequest,
} from './nsm-codec.ts';

/** The NSM device node. */
export const NSM_DEVICE_PATH = '/dev/nsm';

/** `_IOWR(0x0A, 0, sizeof(struct nsm_message))` with a 32-byte message (two iovecs) on 64-bit Linux. */
export const NSM_IOCTL_REQUEST = 0xc0200a00;

const O_RDWR = 2;
const O_CLOEXEC = 0o2000000;
const EMSGSIZE = 90;

/** Options of {@link DeviceNsm.open}. */
export interface DeviceNsmOptions {
  /** The C library providing open/ioctl/close; a stand-in in tests. */
  readonly libraryPath?: string;
  readonly devicePath?: string;
}

interface Native {
  readonly ioctl: KoffiFunction;
  readonly close: KoffiFunction;
  readonly errno: () => number;
}

let nativeTypesDeclared = false;

/** True when this machine has an NSM device (that is, we run inside a Nitro enclave). */
export function nsmDevicePresent(devicePath: string = NSM_DEVICE_PATH): boolean {
  return existsSync(devicePath);
}

/** The NSM device. */
export class DeviceNsm implements Nsm {
  readonly #native: Native;
  #fd: number;

  private constructor(native: Native, fd: number) {
    this.#native = native;
    this.#fd = fd;
  }

  /** Opens the device. @throws {NsmError} `ERR_NSM_INTERNAL` when it cannot be opened. */
  static open(options: DeviceNsmOptions = {}): DeviceNsm {
    const library = koffi.load(options.libraryPath ?? 'libc.so.6');
    if (!nativeTypesDeclared) {
      const iovec = koffi.struct('nitro_infer_iovec', { iov_base: 'void *', iov_len: 'size_t' });
      koffi.struct('nitro_infer_nsm_message', { request: iovec, response: iovec });
      nativeTypesDeclared = true;
    }
    const open = library.func('int open(const char *path, int flags)');
    // ioctl is variadic in C; its third argument is one pointer, passed in the same register either
    // way on x86-64 and aarch64, so a fixed prototype lets koffi run it asynchronously.
    const ioctl = library.func(
      'int ioctl(int fd, unsigned long request, _Inout_ nitro_infer_nsm_message *message)',
    );
    const close = library.func('int close(int fd)');
    const fd = open(options.devicePath ?? NSM_DEVICE_PATH, O_RDWR | O_CLOEXEC) as number;
    if (fd < 0)
      throw new NsmError(
        'ERR_NSM_INTERNAL',
        `cannot open ${options.devicePath ?? NSM_DEVICE_PATH} (errno ${koffi.errno()})`,
      );
    return new DeviceNsm({ ioctl, close, errno: () => koffi.errno() }, fd);
  }

  async attest(request: AttestationRequest): Promise<Uint8Array> {
    for (const field of [request.userData, request.nonce, request.publicKey]) {
      if (field !== undefined && field.byteLength > NSM_MAX_INPUT_BYTES) {
        throw new NsmError(
          'ERR_NSM_INPUT_TOO_LARGE',
          `attestation fields are limited to ${NSM_MAX_INPUT_BYTES} bytes`,
        );
      }
    }
    return decodeAttestationResponse(await this.#call(encodeAttestationRequest(request)));
  }

  async describePcr(index: number): Promise<PcrDescription> {
    return decodeDescribePcrResponse(await this.#call(encodeDescribePcrRequest(index)));
  }

  async extendPcr(index: number, data: Uint8Array): Promise<Uint8Array> {
    return decodeExtendPcrResponse(await this.#call(encodeExtendPcrRequest(index, data)));
  }

  async lockPcr(index: number): Promise<void> {
    decodeUnitResponse(await this.#call(encodeLockPcrRequest(index)), 'LockPCR');
  }

  async lockPcrs(range: number): Promise<void> {
    decodeUnitResponse(await this.#call(encodeLockPcrsRequest(range)), 'LockPCRs');
  }

  async getRandom(): Promise<Uint8Array> {
    return decodeGetRandomResponse(await this.#call(encodeGetRandomRequest()));
  }

  async describeNsm(): Promise<NsmDescription> {
    return decodeDescribeNsmResponse(await this.#call(encodeDescribeNsmRequest()));
  }

  /** Closes the device. */
  close(): void {
    if (this.#fd >= 0) this.#native.close(this.#fd);
    this.#fd = -1;
  }

  async #call(request: Uint8Array): Promise<Uint8Array> {
    if (this.#fd < 0) throw new NsmError('ERR_NSM_INTERNAL', 'the NSM device is closed');
    const response = Buffer.alloc(NSM_RESPONSE_MAX_BYTES);
    const message = {
      request: { iov_base: Buffer.from(request), iov_len: request.byteLength },
      response: { iov_base: response, iov_len: response.byteLength },
    };
    const status = await new Promise<number>((resolve, reject) => {
      this.#native.ioctl.async(this.#fd, NSM_IOCTL_REQUEST, message, (error: unknown, result: number) =>
        error
          ? reject(new NsmError('ERR_NSM_INTERNAL', 'the NSM ioctl could not be called', { cause: error }))
          : resolve(result),
      );
    });
    if (status !== 0) {
      const errno = this.#native.errno();
      throw errno === EMSGSIZE
        ? new NsmError('ERR_NSM_INPUT_TOO_LARGE', 'the NSM refused the request size')
        : new NsmError('ERR_NSM_INTERNAL', `the NSM ioctl failed (errno ${errno})`);
    }
    const length = message.response.iov_len;
    if (!Number.isSafeInteger(length) || length <= 0 || length > NSM_RESPONSE_MAX_BYTES) {
      throw new NsmError('ERR_NSM_INTERNAL', 'the NSM returned an impossible response length');
    }
    return new Uint8Array(response.subarray(0, length));
  }
}
