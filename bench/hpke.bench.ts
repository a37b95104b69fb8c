/**
 * The OHTTP crypto of one request alone (RFC 9458 over RFC 9180 HPKE: DHKEM X25519, HKDF-SHA256,
 * AES-256-GCM), per step, for a 1 KiB request and its 1 KiB response: the client seals the request,
 * the enclave's gateway opens it, seals the response, the client opens that. Goal (issue 11):
 * seal + open of a 1 KiB request ≤ 0.3 ms. No I/O; one thread.
 *
 * Run: npm run bench:hpke   (ROUNDS to change the count; writes bench/results/hpke.json)
 */
import { NodeDhkemX25519HkdfSha256 } from '../shared/ohttp/node-primitives.ts';
import { OhttpGateway, encapsulateRequest } from '../shared/ohttp/encapsulation.ts';
import { environment, peakRssMiB, summarize, writeResult } from './stats.ts';

const ROUNDS = Number(process.env.ROUNDS ?? 5000);
const WARMUP = 500;
const BODY_BYTES = 1024;

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
const message = new Uint8Array(BODY_BYTES).fill(7);

const steps = {
  requestSeal: [] as number[],
  requestOpen: [] as number[],
  responseSeal: [] as number[],
  responseOpen: [] as number[],
  requestSealOpen: [] as number[],
  roundTrip: [] as number[],
};
const elapsed = (start: bigint) => Number(process.hrtime.bigint() - start) / 1e6;
for (let index = 0; index < WARMUP + ROUNDS; index++) {
  const t0 = process.hrtime.bigint();
  const { encapsulated, opener } = await encapsulateRequest(config, message);
  const t1 = process.hrtime.bigint();
  const request = await gateway.decapsulate(encapsulated);
  const t2 = process.hrtime.bigint();
  const response = request.respond(message);
  const t3 = process.hrtime.bigint();
  const opened = opener.open(response);
  const t4 = process.hrtime.bigint();
  if (opened.byteLength !== BODY_BYTES) throw new Error('the response did not round-trip');
  if (index < WARMUP) continue;
  steps.requestSeal.push(Number(t1 - t0) / 1e6);
  steps.requestOpen.push(Number(t2 - t1) / 1e6);
  steps.responseSeal.push(Number(t3 - t2) / 1e6);
  steps.responseOpen.push(Number(t4 - t3) / 1e6);
  steps.requestSealOpen.push(Number(t2 - t0) / 1e6);
  steps.roundTrip.push(elapsed(t0));
}

// CPU time per request seal + open, over a loop of just those two steps: on a machine shared with
// other work the wall-clock samples include waiting for a core; CPU time does not.
const cpuStart = process.cpuUsage();
for (let index = 0; index < ROUNDS; index++) {
  const { encapsulated } = await encapsulateRequest(config, message);
  await gateway.decapsulate(encapsulated);
}
const cpu = process.cpuUsage(cpuStart);
const requestSealOpenCpuMs = Math.round(((cpu.user + cpu.system) / 1000 / ROUNDS) * 1000) / 1000;

const summaries = Object.fromEntries(
  Object.entries(steps).map(([step, samples]) => [step, summarize(samples)]),
);
const result = {
  subject: 'HPKE (OHTTP) seal and open, 1 KiB',
  environment: environment(),
  rounds: ROUNDS,
  ...summaries,
  requestSealOpenCpuMs,
  peakRssMiB: peakRssMiB(),
};
writeResult('hpke', result);
console.log(
  `HPKE seal/open of a ${BODY_BYTES} B OHTTP message — ${environment().cpu}, Node ${process.version}`,
);
console.log('| step | p50 ms | p99 ms |');
console.log('|---|---:|---:|');
for (const [step, summary] of Object.entries(summaries))
  console.log(`| ${step} | ${summary.p50Ms} | ${summary.p99Ms} |`);
console.log(`requestSealOpen CPU time: ${requestSealOpenCpuMs} ms per request (process CPU / rounds)`);
console.log(`goal: requestSealOpen p50 ≤ 0.3 ms; peak RSS ${result.peakRssMiB} MiB`);
