/**
 * Transport addresses (DESIGN.md 5): where the parent reaches the enclave and the enclave reaches
 * KMS. One string form for configuration files and flags: `vsock:<cid>:<port>`, `unix:<path>`,
 * `tcp:<host>:<port>`. Parsing is strict: a typo is an error at start-up, never a silent default.
 */
import { TransportError } from './errors.ts';

/** `VMADDR_CID_ANY`: a listening enclave accepts connections addressed to any of its CIDs. */
export const VSOCK_CID_ANY = 0xffff_ffff;

/** The CID of the parent instance as an enclave sees it (`VMADDR_CID_HOST`). */
export const VSOCK_CID_PARENT = 3;

/** A parsed transport address. */
export type TransportAddress =
  | { readonly kind: 'vsock'; readonly cid: number; readonly port: number }
  | { readonly kind: 'unix'; readonly path: string }
  | { readonly kind: 'tcp'; readonly host: string; readonly port: number };

/** Longest Unix socket path: `sun_path` is 108 bytes including the terminating NUL. */
export const MAX_UNIX_PATH_BYTES = 107;

/**
 * Parses an address. `vsock:any:<port>` stands for {@link VSOCK_CID_ANY}; ports are 1–65535 for TCP
 * and 0–0xFFFFFFFE for vsock (vsock ports are 32 bits).
 */
export function parseTransportAddress(text: string): TransportAddress {
  const colon = text.indexOf(':');
  const scheme = colon < 0 ? '' : text.slice(0, colon);
  const rest = text.slice(colon + 1);
  switch (scheme) {
    case 'unix': {
      if (rest.length === 0 || Buffer.byteLength(rest) > MAX_UNIX_PATH_BYTES || rest.includes('\0')) {
        throw invalid(text, `a Unix socket path of 1 to ${MAX_UNIX_PATH_BYTES} bytes`);
      }
      return { kind: 'unix', path: rest };
    }
    case 'vsock': {
      const match = /^(any|\d{1,10}):(\d{1,10})$/.exec(rest);
      const cid = match?.[1] === 'any' ? VSOCK_CID_ANY : Number(match?.[1]);
      const port = Number(match?.[2]);
      if (match === null || cid > VSOCK_CID_ANY || port >= 0xffff_ffff) {
        throw invalid(text, 'vsock:<cid|any>:<port> with 32-bit numbers');
      }
      return { kind: 'vsock', cid, port };
    }
    case 'tcp': {
      const match = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(rest);
      const port = Number(match?.[2]);
      if (match === null || port < 1 || port > 65_535) {
        throw invalid(text, 'tcp:<host>:<port> with a port of 1 to 65535');
      }
      return { kind: 'tcp', host: (match[1] as string).replace(/^\[|\]$/g, ''), port };
    }
    default:
      throw invalid(text, 'vsock:<cid>:<port>, unix:<path> or tcp:<host>:<port>');
  }
}

/** The canonical string form of an address (for logs and messages). */
export function formatTransportAddress(address: TransportAddress): string {
  switch (address.kind) {
    case 'unix':
      return `unix:${address.path}`;
    case 'vsock':
      return `vsock:${address.cid === VSOCK_CID_ANY ? 'any' : address.cid}:${address.port}`;
    case 'tcp':
      return `tcp:${address.host.includes(':') ? `[${address.host}]` : address.host}:${address.port}`;
  }
}

function invalid(text: string, expected: string): TransportError {
  return new TransportError(
    'ERR_TRANSPORT_ADDRESS_INVALID',
    `transport address ${JSON.stringify(text.slice(0, 200))} is not ${expected}`,
  );
}
