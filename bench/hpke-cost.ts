/**
 * The OHTTP crypto of one request alone, measured one way for every benchmark that reports it
 * (hpke.bench.ts, and e2e.bench.ts beside the full path): RFC 9458 over RFC 9180 HPKE (DHKEM
 * X25519, HKDF-SHA256, AES-256-GCM), the client sealing a request, the gateway opening it and
 * sealing the response, the client opening that — wall time per step, and CPU time per request
 * seal + open over a loop of just those two steps. No I/O; one thread.
 */
import { NodeDhkemX25519HkdfSha256 } from '../shared/ohttp/node-primitives.ts';
import { OhttpGateway, encapsulateRequest } from '../shared/ohttp/encapsulation.ts';
import { summarize } from './stats.ts';
import type { LatencySummary } from './stats.ts';

export const HPKE_STEPS = [
  'requestSeal',
  'requestOpen',
  'responseSeal',
  'responseOpen',
  'requestSealOpen',
  'roundTrip',
] as const;
export type HpkeStep = (typeof HPKE_STEPS)[number];

export interface HpkeCost {
  readonly rounds: number;
  readonly bodyBytes: number;
  readonly steps: Record<HpkeStep, LatencySummary>;
  /** Process CPU time per request seal + open (ms), which waiting for a core does not inflate. */
  readonly requestSealOpenCpuMs: number;
}

export interface HpkeCostOptions {
  readonly rounds?: number;
  readonly warmup?: number;
  /** Request and response body size (1 KiB by default, as issue 11's goal is stated). */
  readonly bodyBytes?: number;
}

export async function measureHpkeCost(options: HpkeCostOptions = {}): Promise<HpkeCost> {
  const { rounds = 5000, warmup = 500, bodyBytes = 1024 } = options;
  const kem = new NodeDhkemX25519HkdfSha256();
  const pair = await kem.generateKeyPair();
  const config = {
    keyId: 1,
    kemId: 0x20,
    publicKey: new Uint8Array(await kem.serializePublicKey(pair.publicKey)),
    symmetricAlgorithms: [{ kdfId: 1, aeadId: 2 }],
  };
  const gateway = await OhttpGateway.create(
    config,
    new Uint8Array(await kem.serializePrivateKey(pair.privateKey)),
  );
  const message = new Uint8Array(bodyBytes).fill(7);

  const samples = Object.fromEntries(HPKE_STEPS.map((step) => [step, [] as number[]])) as Record<
    HpkeStep,
    number[]
  >;
  const ms = (from: bigint, to: bigint) => Number(to - from) / 1e6;
  for (let index = 0; index < warmup + rounds; index++) {
    const t0 = process.hrtime.bigint();
    const { encapsulated, opener } = await encapsulateRequest(config, message);
    const t1 = process.hrtime.bigint();
    const request = await gateway.decapsulate(encapsulated);
    const t2 = process.hrtime.bigint();
    const response = request.respond(message);
    const t3 = process.hrtime.bigint();
    const opened = opener.open(response);
    const t4 = process.hrtime.bigint();
    if (opened.byteLength !== bodyBytes) throw new Error('the response did not round-trip');
    if (index < warmup) continue;
    samples.requestSeal.push(ms(t0, t1));
    samples.requestOpen.push(ms(t1, t2));
    samples.responseSeal.push(ms(t2, t3));
    samples.responseOpen.push(ms(t3, t4));
    samples.requestSealOpen.push(ms(t0, t2));
    samples.roundTrip.push(ms(t0, t4));
  }

  // CPU time per request seal + open, over a loop of just those two steps: on a machine shared with
  // other work the wall-clock samples include waiting for a core; CPU time does not.
  const cpuStart = process.cpuUsage();
  for (let index = 0; index < rounds; index++) {
    const { encapsulated } = await encapsulateRequest(config, message);
    await gateway.decapsulate(encapsulated);
  }
  const cpu = process.cpuUsage(cpuStart);
  return {
    rounds,
    bodyBytes,
    steps: Object.fromEntries(HPKE_STEPS.map((step) => [step, summarize(samples[step])])) as Record<
      HpkeStep,
      LatencySummary
    >,
    requestSealOpenCpuMs: Math.round(((cpu.user + cpu.system) / 1000 / rounds) * 1000) / 1000,
  };
}
