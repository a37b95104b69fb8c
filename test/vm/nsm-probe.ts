/**
 * Bundled beside the production entry (same esbuild settings) and run inside the guest: drives
 * `enclave/nsm/device-nsm.ts` against Debian's `nsm` driver and QEMU's `virtio-nsm-pci`, and prints
 * one `NSM_PROBE <json>` line per call — bytes as hex, failures as their stable code. It judges
 * nothing: the test on the host decodes and checks every answer (so the document, which no root
 * can verify, is only ever decoded in test/vm).
 */
import { DeviceNsm } from '../../enclave/nsm/device-nsm.ts';
import { isNitroInferError } from '../../shared/errors.ts';
import { PROBE_INPUTS } from './nsm-probe-inputs.ts';

const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString('hex');

function encode(value: unknown): unknown {
  if (value instanceof Uint8Array) return hex(value);
  if (Array.isArray(value)) return value.map(encode);
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([key, field]) => [key, encode(field)]));
  }
  return value;
}

const nsm = DeviceNsm.open();

async function call(name: string, action: () => Promise<unknown>): Promise<void> {
  let line: Record<string, unknown>;
  try {
    line = { name, result: encode((await action()) ?? null) };
  } catch (error) {
    line = { name, code: isNitroInferError(error) ? error.code : `uncaught ${String(error)}` };
  }
  process.stdout.write(`NSM_PROBE ${JSON.stringify(line)}\n`);
}

const { nonce, userData, publicKey, extension, pcr, lockedRange } = PROBE_INPUTS;
await call('describeNsm.fresh', () => nsm.describeNsm());
await call('attest.empty', () => nsm.attest({}));
await call('attest.full', () => nsm.attest({ nonce, userData, publicKey }));
await call('attest.nonceOnly', () => nsm.attest({ nonce }));
await call('describePcr.before', () => nsm.describePcr(pcr));
await call('extendPcr', () => nsm.extendPcr(pcr, extension));
await call('describePcr.after', () => nsm.describePcr(pcr));
await call('extendPcr.tooLarge', () => nsm.extendPcr(pcr, new Uint8Array(1025)));
await call('describePcr.afterTooLarge', () => nsm.describePcr(pcr));
await call('lockPcr', () => nsm.lockPcr(pcr));
await call('extendPcr.locked', () => nsm.extendPcr(pcr, extension));
await call('describePcr.locked', () => nsm.describePcr(pcr));
await call('lockPcrs', () => nsm.lockPcrs(lockedRange));
await call('extendPcr.inLockedRange', () => nsm.extendPcr(lockedRange - 1, extension));
await call('extendPcr.aboveLockedRange', () => nsm.extendPcr(lockedRange, extension));
await call('describeNsm.locked', () => nsm.describeNsm());
await call('attest.locked', () => nsm.attest({ nonce }));
for (let index = 0; index < 32; index++) {
  await call(`describePcr.${index}`, () => nsm.describePcr(index));
}
await call('getRandom.1', () => nsm.getRandom());
await call('getRandom.2', () => nsm.getRandom());
await call('attest.userDataTooLarge', () => nsm.attest({ userData: new Uint8Array(1025) }));
await call('describePcr.32', () => nsm.describePcr(32));
await call('describePcr.300', () => nsm.describePcr(300));
await call('extendPcr.32', () => nsm.extendPcr(32, extension));
await call('lockPcr.32', () => nsm.lockPcr(32));
await call('lockPcrs.33', () => nsm.lockPcrs(33));
nsm.close();
