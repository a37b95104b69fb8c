/** The parent's link client against the real link server: multiplexing, timeouts, loss, reconnects. */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { connectTransport } from '../../../transport/index.ts';
import { EnclaveLink } from '../../../parent/link/enclave-link.ts';
import { uploadModel } from '../../../parent/link/model-upload.ts';
import { ArtifactError } from '../../../shared/errors.ts';
import { codeOfAsync } from '../../helpers/codes.ts';
import { FakeEnclave } from '../../helpers/fake-enclave.ts';

let enclave: FakeEnclave;
let link: EnclaveLink;

function newLink(options: { requestTimeoutMs?: number; maxInFlight?: number } = {}): EnclaveLink {
  const created = new EnclaveLink({
    connect: () => connectTransport(`unix:${enclave.socketPath}`),
    backoff: { initialMs: 10, maxMs: 50 },
    ...options,
  });
  return created;
}

function stateReached(target: EnclaveLink, state: string): Promise<void> {
  return new Promise((resolve) => {
    const listener = (current: string) => {
      if (current !== state) return;
      target.off('state', listener);
      resolve();
    };
    target.on('state', listener);
  });
}

beforeEach(async () => {
  enclave = await FakeEnclave.create();
  enclave.handlers.set('echo', async (fields) => ({ body: fields.get('body') }));
  enclave.handlers.set('slow', async () => new Promise(() => {}));
  enclave.handlers.set('fail', async () => {
    throw Object.assign(new Error('no such model'), {});
  });
  await enclave.start();
});

afterEach(async () => {
  link?.close();
  await enclave.dispose();
});

describe('enclave link', () => {
  it('is not usable before it is ready, and answers many requests in flight out of order', async () => {
    link = newLink();
    expect(await codeOfAsync(() => link.request('echo', { body: new Uint8Array([1]) }))).toBe(
      'ERR_LINK_UNAVAILABLE',
    );
    link.start();
    await link.ready();
    const replies = await Promise.all(
      Array.from({ length: 500 }, (_, index) =>
        link.request('echo', { body: new Uint8Array([index % 256, index >> 8]) }),
      ),
    );
    replies.forEach((fields, index) =>
      expect([...(fields.get('body') as Uint8Array)]).toEqual([index % 256, index >> 8]),
    );
  });

  it('keeps the enclave’s error code, and hides unknown errors as ERR_INTERNAL', async () => {
    link = newLink();
    link.start();
    await link.ready();
    expect(await codeOfAsync(() => link.request('no.such.type'))).toBe('ERR_LINK_REQUEST_INVALID');
    expect(await codeOfAsync(() => link.request('fail'))).toBe('ERR_INTERNAL');
  });

  it('times a request out with ERR_LINK_TIMEOUT and drops the late answer', async () => {
    link = newLink({ requestTimeoutMs: 50 });
    link.start();
    await link.ready();
    expect(await codeOfAsync(() => link.request('slow'))).toBe('ERR_LINK_TIMEOUT');
    expect(link.inFlight).toBe(0);
    expect(await codeOfAsync(() => link.request('echo', { body: new Uint8Array(1) }))).toBe('accepted');
  });

  it('refuses beyond maxInFlight with ERR_LINK_OVERLOADED', async () => {
    link = newLink({ maxInFlight: 2, requestTimeoutMs: 10_000 });
    link.start();
    await link.ready();
    void link.request('slow').catch(() => {});
    void link.request('slow').catch(() => {});
    expect(await codeOfAsync(() => link.request('echo'))).toBe('ERR_LINK_OVERLOADED');
  });

  it('fails pending requests when the enclave dies, reconnects, and reruns the connect hooks', async () => {
    link = newLink({ requestTimeoutMs: 10_000 });
    let hookRuns = 0;
    link.onConnect(async (current) => {
      hookRuns += 1;
      await current.request('echo', { body: new Uint8Array([9]) }, { internal: true });
    });
    const states: string[] = [];
    link.on('state', (state: string) => states.push(state));
    link.start();
    await link.ready();
    expect(hookRuns).toBe(1);
    const pending = codeOfAsync(() => link.request('slow'));
    // With several connections the link is down once the last one has dropped.
    const down = stateReached(link, 'connecting');
    await enclave.stop();
    expect(await pending).toBe('ERR_LINK_UNAVAILABLE');
    await down;
    expect(link.openConnections).toBe(0);
    await enclave.start();
    await link.ready();
    expect(hookRuns).toBe(2);
    expect(link.reconnects).toBe(1);
    expect(states).toEqual(['syncing', 'ready', 'connecting', 'syncing', 'ready']);
  });

  it('streams an upload in chunks within a window and aborts it when the source fails', async () => {
    const chunks: number[] = [];
    let inFlight = 0;
    let maxInFlight = 0;
    enclave.handlers.set('model.load', async () => ({}));
    enclave.handlers.set('model.chunk', async (fields) => {
      inFlight += 1;
      maxInFlight = Math.max(maxInFlight, inFlight);
      await new Promise((resolve) => setTimeout(resolve, 2));
      inFlight -= 1;
      chunks.push((fields.get('data') as Uint8Array).byteLength);
      return {};
    });
    enclave.handlers.set('model.end', async () => ({ model: new Map([['name', 'm']]) }));
    enclave.handlers.set('model.abort', async () => ({}));
    await enclave.stop();
    await enclave.start();
    link = newLink();
    link.start();
    await link.ready();
    async function* source(fail: boolean) {
      for (let index = 0; index < 20; index++) {
        if (fail && index === 10) throw new ArtifactError('ERR_ARTIFACT_SOURCE_UNAVAILABLE', 'S3 went away');
        yield new Uint8Array(300 * 1024);
      }
    }
    await uploadModel(link, 'm', 20 * 300 * 1024, source(false), { chunkBytes: 1024 * 1024, window: 3 });
    expect(chunks.reduce((sum, size) => sum + size, 0)).toBe(20 * 300 * 1024);
    expect(Math.max(...chunks)).toBe(1024 * 1024);
    expect(maxInFlight).toBeLessThanOrEqual(3);
    enclave.received.length = 0;
    expect(await codeOfAsync(() => uploadModel(link, 'm', 20 * 300 * 1024, source(true)))).toBe(
      'ERR_ARTIFACT_SOURCE_UNAVAILABLE',
    );
    expect(enclave.received.at(-1)).toBe('model.abort');
    expect(enclave.received).not.toContain('model.end');
  });
});
