/**
 * Measures full verification of an attestation document (COSE parse, payload checks, chain to the
 * pinned root, ES384 signature, policy) in microseconds per document: median and p99.
 *
 * - "repeat chain": the common case of a verifier seeing documents from an NSM whose certificates
 *   it has seen before (they change every few hours); pure per-certificate results are cached.
 * - "cold": every cache cleared before each verification, so all five P-384 signatures are checked.
 * - "P-384 verify": one bare ECDSA P-384/SHA-384 verification by Node's crypto, the floor per signature.
 *
 * Run: npm run bench   (writes bench/results/attestation-verify.json)
 */
import { generateKeyPairSync, sign, verify } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { clearCertificateCache, verifyAttestation } from '../shared/attestation/index.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const FIXTURES = path.resolve(ROOT, process.env.NITRO_FIXTURES_DIR ?? '../shared/fixtures');
const DOCUMENT = 'attestation/genuine/evervault-prod-2022-10-13.cose';
const AT = 1665651482136;
const ITERATIONS = Number(process.env.BENCH_ITERATIONS ?? 2000);

function measure(label: string, iterations: number, run: () => void) {
  for (let index = 0; index < Math.min(200, iterations); index++) run();
  const samples = new Float64Array(iterations);
  for (let index = 0; index < iterations; index++) {
    const start = process.hrtime.bigint();
    run();
    samples[index] = Number(process.hrtime.bigint() - start) / 1000;
  }
  samples.sort();
  const at = (quantile: number) => samples[Math.min(iterations - 1, Math.floor(quantile * iterations))]!;
  return { label, iterations, medianMicroseconds: round(at(0.5)), p99Microseconds: round(at(0.99)) };
}

function round(value: number): number {
  return Math.round(value * 10) / 10;
}

if (!existsSync(path.join(FIXTURES, DOCUMENT))) {
  console.error(`fixtures absent at ${FIXTURES} (set NITRO_FIXTURES_DIR); nothing measured`);
  process.exit(1);
}
const document = new Uint8Array(readFileSync(path.join(FIXTURES, DOCUMENT)));
const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'secp384r1' });
const message = new Uint8Array(4096);
const signature = sign('sha384', message, { key: privateKey, dsaEncoding: 'ieee-p1363' });

const results = [
  measure('full verification, repeat chain', ITERATIONS, () => verifyAttestation(document, { at: AT })),
  measure('full verification, cold', Math.ceil(ITERATIONS / 4), () => {
    clearCertificateCache();
    verifyAttestation(document, { at: AT });
  }),
  measure('P-384 verify (floor, one signature)', ITERATIONS, () =>
    verify('sha384', message, { key: publicKey, dsaEncoding: 'ieee-p1363' }, signature),
  ),
];

const report = {
  subject: 'attestation verification',
  document: DOCUMENT,
  node: process.version,
  cpu: os.cpus()[0]?.model ?? 'unknown',
  cores: os.cpus().length,
  date: new Date().toISOString(),
  results,
};
mkdirSync(path.join(ROOT, 'bench', 'results'), { recursive: true });
writeFileSync(
  path.join(ROOT, 'bench', 'results', 'attestation-verify.json'),
  `${JSON.stringify(report, null, 2)}\n`,
);
console.log(`attestation verification — ${report.cpu}, ${report.cores} cores, Node ${report.node}`);
console.log('| measurement | median µs | p99 µs |');
console.log('|---|---:|---:|');
for (const result of results)
  console.log(`| ${result.label} | ${result.medianMicroseconds} | ${result.p99Microseconds} |`);
