/**
 * `nitro-infer sim`: the local simulation. For now it exercises the attestation path end to end:
 * a simulated Nitro PKI and NSM (PCR0 measured from this checkout's enclave code) produce a document
 * for a fresh nonce, which the verifier accepts under the simulated root and the measured PCRs and
 * refuses under the AWS root. Everything it writes goes to a state directory so that the printed
 * `attest verify` command can be re-run by hand.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { verifyAttestation } from '../shared/attestation/index.ts';
import { CliError, isNitroInferError } from '../shared/errors.ts';
import { createSimulatedEnclaveIdentity } from '../sim/index.ts';
import type { CommandOutput } from './cli-output.ts';

export const SIM_ATTEST_HELP = `Usage: nitro-infer sim attest [--state-dir <dir>]

One attestation, offline: a simulated Nitro PKI and NSM whose PCR0 is measured from this
checkout's enclave code, one attestation document for a fresh nonce, verified end to end.

Options:
  --state-dir <dir>   where the simulated root, pcrs.json and the document are written
                      (default .nitro-infer/sim-attest)
  -h, --help          show this help`;

/** Runs the simulation once and reports what it did. */
export async function simAttest(args: readonly string[]): Promise<CommandOutput> {
  let values: { 'state-dir'?: string; help?: boolean };
  try {
    ({ values } = parseArgs({
      args: [...args],
      strict: true,
      options: { 'state-dir': { type: 'string' }, help: { type: 'boolean', short: 'h' } },
    }));
  } catch (error) {
    throw new CliError('ERR_CLI_USAGE', (error as Error).message);
  }
  if (values.help === true) return { exitCode: 0, stdout: SIM_ATTEST_HELP };
  const stateDirectory = path.resolve(values['state-dir'] ?? '.nitro-infer/sim-attest');
  await mkdir(stateDirectory, { recursive: true, mode: 0o700 });

  const { pki, nsm, measurements, moduleId } = await createSimulatedEnclaveIdentity();
  const pcrs = {
    Measurements: {
      HashAlgorithm: 'Sha384 { ... }',
      PCR0: hex(measurements.pcr0),
      PCR1: hex(measurements.pcr1),
      PCR2: hex(measurements.pcr2),
    },
  };
  const nonce = new Uint8Array(randomBytes(32));
  const document = await nsm.attest({ nonce });

  const files = {
    root: path.join(stateDirectory, 'simulated-root.pem'),
    pki: path.join(stateDirectory, 'pki.json'),
    pcrs: path.join(stateDirectory, 'pcrs.json'),
    document: path.join(stateDirectory, 'attestation.cose'),
  };
  await writeFile(files.root, pki.rootCertificatePem);
  await writeFile(files.pki, JSON.stringify(pki.toJSON(), null, 2), { mode: 0o600 });
  await writeFile(files.pcrs, `${JSON.stringify(pcrs, null, 2)}\n`);
  await writeFile(files.document, document);

  const verified = verifyAttestation(document, {
    roots: [pki.rootCertificate],
    expectedPcrs: { 0: measurements.pcr0, 1: measurements.pcr1, 2: measurements.pcr2 },
    nonce,
    maxAgeMs: 60_000,
  });
  let underAwsRoot = 'accepted (unexpected!)';
  try {
    verifyAttestation(document);
  } catch (error) {
    underAwsRoot = isNitroInferError(error) ? `refused: ${error.code}` : 'refused';
  }
  if (underAwsRoot.startsWith('accepted')) {
    return { exitCode: 1, stderr: 'the AWS root accepted a simulated document; refusing to continue' };
  }

  const relative = (file: string) => {
    const shortened = path.relative(process.cwd(), file);
    return shortened === '' || shortened.startsWith('..') ? file : shortened;
  };
  return {
    exitCode: 0,
    stdout: [
      'nitro-infer simulation: attestation end to end',
      `  module id        ${moduleId}`,
      `  PCR0             ${pcrs.Measurements.PCR0}`,
      `  PCR1             ${pcrs.Measurements.PCR1}`,
      `  PCR2             ${pcrs.Measurements.PCR2}`,
      `  document         ${document.byteLength} bytes, ${new Date(verified.document.timestamp).toISOString()}`,
      `  simulated root   verified (chain, ES384 signature, PCR0/1/2, nonce, age)`,
      `  AWS root         ${underAwsRoot}`,
      `  state directory  ${stateDirectory}`,
      '',
      'Verify it again by hand:',
      `  npx nitro-infer attest verify ${relative(files.document)} --root ${relative(files.root)} --pcrs ${relative(files.pcrs)}`,
    ].join('\n'),
  };
}

function hex(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('hex');
}
