/**
 * The SDK pads every request to the size buckets responses use (shared/ohttp/padding.ts): with
 * binary tensor bodies the ciphertext length would otherwise give the relay the exact input size
 * (token count, image dimensions) of every request (attacker review). The relay sees only the
 * encapsulated bytes, so that is what is measured here.
 */
import { describe, expect, it } from 'vitest';
import { createClient } from '../../../client/index.ts';
import { PCR0, fakeOhttpParent } from '../../helpers/ohttp-parent.ts';

async function sizesSeenByTheRelay(bodySizes: readonly number[]): Promise<number[]> {
  const parent = await fakeOhttpParent();
  const seen: number[] = [];
  const client = createClient({
    endpoint: 'http://parent.invalid',
    policy: { pcrs: { 0: PCR0 }, roots: [parent.rootCertificate] },
    fetch: async (input, init) => {
      if (String(input).endsWith('/.well-known/ohttp-gateway'))
        seen.push((init?.body as Uint8Array).byteLength);
      return parent.fetch(input, init);
    },
  });
  for (const size of bodySizes) {
    await client.forward({
      method: 'POST',
      path: '/v2/models/m/infer',
      body: new Uint8Array(size).fill(7),
      headers: [['content-type', 'application/octet-stream']],
    });
  }
  return seen;
}

describe('client: request padding', () => {
  it('requests of different sizes in one bucket look the same to the relay', async () => {
    const [a, b, c] = await sizesSeenByTheRelay([10, 300, 900]);
    expect(b).toBe(a);
    expect(c).toBe(a);
  });

  it('sizes in different buckets differ by the bucket, not the byte', async () => {
    const [small, large, larger] = await sizesSeenByTheRelay([100, 70_000, 70_100]);
    expect(large).toBeGreaterThan(small!);
    expect(larger).toBe(large);
  });
});
