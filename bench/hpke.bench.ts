/**
 * The OHTTP crypto of one request alone (RFC 9458 over RFC 9180 HPKE: DHKEM X25519, HKDF-SHA256,
 * AES-256-GCM), per step, for a 1 KiB request and its 1 KiB response: the client seals the request,
 * the enclave's gateway opens it, seals the response, the client opens that. Goal (issue 11):
 * seal + open of a 1 KiB request ≤ 0.3 ms. The measurement itself is hpke-cost.ts (e2e.bench.ts
 * reports the same one). No I/O; one thread.
 *
 * Run: npm run bench:hpke   (ROUNDS to change the count; writes bench/results/hpke.json)
 */
import { measureHpkeCost } from './hpke-cost.ts';
import { environment, peakRssMiB, writeResult } from './stats.ts';

const cost = await measureHpkeCost({ rounds: Number(process.env.ROUNDS ?? 5000), warmup: 500 });
const result = {
  subject: 'HPKE (OHTTP) seal and open, 1 KiB',
  environment: environment(),
  rounds: cost.rounds,
  ...cost.steps,
  requestSealOpenCpuMs: cost.requestSealOpenCpuMs,
  peakRssMiB: peakRssMiB(),
};
writeResult('hpke', result);
console.log(
  `HPKE seal/open of a ${cost.bodyBytes} B OHTTP message — ${environment().cpu}, Node ${process.version}`,
);
console.log('| step | p50 ms | p99 ms |');
console.log('|---|---:|---:|');
for (const [step, summary] of Object.entries(cost.steps))
  console.log(`| ${step} | ${summary.p50Ms} | ${summary.p99Ms} |`);
console.log(`requestSealOpen CPU time: ${cost.requestSealOpenCpuMs} ms per request (process CPU / rounds)`);
console.log(`goal: requestSealOpen p50 ≤ 0.3 ms; peak RSS ${result.peakRssMiB} MiB`);
