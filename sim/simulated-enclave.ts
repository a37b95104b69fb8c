/**
 * Wiring for a simulated enclave's NSM: the simulated PKI plus boot PCRs measured from the code
 * bundle. Used by the local stack, by `nitro-infer sim` and by tests.
 */
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { SimulatedNsm } from '../enclave/nsm/index.ts';
import { measureEnclaveCodeBundle } from './code-measurement.ts';
import type { BootMeasurements } from './code-measurement.ts';
import { SimulatedNitroPki } from './nitro-pki.ts';

/** The project root, from which the simulated enclave's code bundle is measured. */
export const PROJECT_ROOT = fileURLToPath(new URL('..', import.meta.url));

/** A simulated NSM with the PKI that signs for it. */
export interface SimulatedEnclaveIdentity {
  readonly pki: SimulatedNitroPki;
  readonly nsm: SimulatedNsm;
  readonly measurements: BootMeasurements;
  readonly moduleId: string;
}

/** Options of {@link createSimulatedEnclaveIdentity}. */
export interface SimulatedEnclaveIdentityOptions {
  /** An existing PKI (e.g. restored from a state directory); a fresh one otherwise. */
  readonly pki?: SimulatedNitroPki;
  /** Where the code bundle is measured from; defaults to this project. */
  readonly projectRoot?: string;
  readonly clock?: () => number;
}

/** Creates a simulated NSM whose PCR0/1/2 measure the enclave code under `projectRoot`. */
export async function createSimulatedEnclaveIdentity(
  options: SimulatedEnclaveIdentityOptions = {},
): Promise<SimulatedEnclaveIdentity> {
  const clock = options.clock ?? Date.now;
  const pki = options.pki ?? SimulatedNitroPki.create({ now: clock() });
  const measurements = await measureEnclaveCodeBundle(options.projectRoot ?? PROJECT_ROOT);
  const moduleId = `${pki.instanceId}-enc${randomBytes(8).toString('hex')}`;
  const nsm = new SimulatedNsm({
    identity: pki.signingIdentitySource(moduleId),
    moduleId,
    bootPcrs: new Map([
      [0, measurements.pcr0],
      [1, measurements.pcr1],
      [2, measurements.pcr2],
    ]),
    clock,
  });
  return { pki, nsm, measurements, moduleId };
}
