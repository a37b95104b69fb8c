/**
 * The CDK app. Run through the CDK CLI (a devDependency; `cdk.json` names this file as the app):
 *
 *   npm run synth -- -c pcrs=build/pcrs.json -c keyAdmins=<arn,…> -c certificateArn=<acm arn> [-c sealer=<arn>]
 *   npx cdk deploy  (same -c flags)
 *
 * The CLI hands `-c` values to this process as CDK_CONTEXT_JSON, which `new App()` reads. The PCRs
 * come from the build's own pcrs.json, so the key policy pins exactly the image that was built;
 * `-c previousPcrs=<file>` keeps the running build's PCRs in the policy during a rolling upgrade
 * (docs/deploy.md "Rolling upgrade"). Never deployed by CI.
 */
import { existsSync, readFileSync } from 'node:fs';
import { App } from 'aws-cdk-lib';
import { parseNitroCliMeasurements } from '../shared/attestation/index.ts';
import { POLICY_PCRS } from '../shared/key-policy.ts';
import { NitroInferStack } from './stack.ts';

const app = new App();
const context = (name: string): string | undefined => {
  const value = app.node.tryGetContext(name) as unknown;
  return value === undefined ? undefined : String(value);
};

/** Exits with a message, not a stack trace: these are operator typos, not bugs. */
function fail(message: string): never {
  process.stderr.write(`error: ${message}\n`);
  process.exit(2);
}

/** The PCRs a key policy pins (0, 1, 2 and 8 when signed), read from a nitro-cli pcrs.json. */
function readPcrs(flag: string, file: string): ReadonlyMap<number, string> {
  if (!existsSync(file)) {
    fail(
      `-c ${flag}=${file}: no such file (scripts/build-eif writes build/pcrs.json; docs/deploy.md step 1)`,
    );
  }
  const measured = parseNitroCliMeasurements(readFileSync(file, 'utf8'));
  return new Map(
    [...measured]
      .filter(([index]) => (POLICY_PCRS as readonly number[]).includes(index))
      .map(([index, value]) => [index, Buffer.from(value).toString('hex')]),
  );
}

/** A whole number context value, strictly digits (" 2 " or "2.5" is a typo to report). */
function count(name: string): number | undefined {
  const raw = context(name);
  if (raw === undefined) return undefined;
  if (!/^\d{1,6}$/.test(raw)) fail(`-c ${name}=${raw}: expected a whole number`);
  return Number(raw);
}

const keyAdmins = context('keyAdmins');
const certificateArn = context('certificateArn');
if (keyAdmins === undefined || certificateArn === undefined) {
  // CloudFormation creates the key as the bootstrap's cfn-exec role; KMS refuses a policy that locks it out.
  fail(
    'pass -c keyAdmins=<arn,…> (include arn:aws:iam::<account>:role/cdk-hnb659fds-cfn-exec-role-<account>-<region>) ' +
      'and -c certificateArn=<acm certificate arn>',
  );
}
const pcrs = readPcrs('pcrs', context('pcrs') ?? 'build/pcrs.json');
const previousFile = context('previousPcrs');
const previousPcrs = previousFile === undefined ? undefined : readPcrs('previousPcrs', previousFile);
const sealer = context('sealer');
const releasePrefix = context('releasePrefix');
if (releasePrefix !== undefined && !/^[\w./-]{1,200}\/$/.test(releasePrefix)) {
  fail(`-c releasePrefix=${releasePrefix}: letters, digits, . _ - / only, ending in "/" (e.g. release/v2/)`);
}
const instanceType = context('instanceType');
const minInstances = count('minInstances');
const maxInstances = count('maxInstances');
const enclaveCpus = count('enclaveCpus');
const enclaveMemoryMib = count('enclaveMemoryMib');

new NitroInferStack(app, context('stackName') ?? 'NitroInfer', {
  pcrs,
  ...(previousPcrs === undefined ? {} : { previousPcrs }),
  keyAdminArns: keyAdmins.split(','),
  certificateArn,
  ...(sealer === undefined ? {} : { sealerRoleArn: sealer }),
  ...(releasePrefix === undefined ? {} : { releasePrefix }),
  ...(instanceType === undefined ? {} : { instanceType }),
  ...(minInstances === undefined ? {} : { minInstances }),
  ...(maxInstances === undefined ? {} : { maxInstances }),
  ...(enclaveCpus === undefined ? {} : { enclaveCpus }),
  ...(enclaveMemoryMib === undefined ? {} : { enclaveMemoryMib }),
  env: { account: process.env.CDK_DEFAULT_ACCOUNT, region: process.env.CDK_DEFAULT_REGION },
});
app.synth();
