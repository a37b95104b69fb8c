/**
 * `ohttp.config`: the current key config alone, for RFC 9540 discovery — no NSM round trip per
 * request (clients still verify it through an attestation before use).
 */
import type { OhttpKeys } from '../gateway/ohttp-keys.ts';
import type { LinkHandler } from '../server/link-server.ts';

export function ohttpConfigHandler(ohttpKeys: OhttpKeys): LinkHandler {
  return async () => ({ keyConfig: ohttpKeys.keyConfig });
}
