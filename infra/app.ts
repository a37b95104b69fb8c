/**
 * The CDK app: `npx cdk synth --app "npx tsx infra/app.ts" -c pcrs=build/pcrs.json -c keyAdmins=<arn,…>
 * -c certificateArn=<acm arn> [-c sealer=<arn>]`. The PCRs come from the build's own pcrs.json, so
 * the key policy pins exactly the image that was built. Never deployed by CI.
 */
import { readFileSync } from 'node:fs';
import { App } from 'aws-cdk-lib';
import { parseNitroCliMeasurements } from '../shared/attestation/index.ts';
import { NitroInferStack } from './stack.ts';

const app = new App();
const context = (name: string) => app.node.tryGetContext(name) as string | undefined;
const pcrsFile = context('pcrs') ?? 'build/pcrs.json';
const measured = parseNitroCliMeasurements(readFileSync(pcrsFile, 'utf8'));
const pcrs = new Map(
  [...measured]
    .filter(([index]) => [0, 1, 2, 8].includes(index))
    .map(([index, value]) => [index, Buffer.from(value).toString('hex')]),
);
const keyAdmins = context('keyAdmins');
const certificateArn = context('certificateArn');
if (keyAdmins === undefined || certificateArn === undefined) {
  throw new Error(
    'pass -c keyAdmins=<arn,…> (include the deploying role) and -c certificateArn=<acm certificate arn>',
  );
}
const sealer = context('sealer');
new NitroInferStack(app, context('stackName') ?? 'NitroInfer', {
  pcrs,
  keyAdminArns: keyAdmins.split(','),
  certificateArn,
  ...(sealer === undefined ? {} : { sealerRoleArn: sealer }),
  env: { account: process.env.CDK_DEFAULT_ACCOUNT, region: process.env.CDK_DEFAULT_REGION },
});
app.synth();
