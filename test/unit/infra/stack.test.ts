/**
 * The CDK app, synthesised (never deployed): each property DESIGN.md 7 and the ship issue ask for is
 * asserted on the CloudFormation template.
 */
import { App } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import { beforeAll, describe, expect, it } from 'vitest';
import { CLUSTER_PORT, ENCLAVE_CID, NitroInferStack, PARENT_PORT } from '../../../infra/stack.ts';

const PCR0 = 'a'.repeat(96);
const PCR1 = 'b'.repeat(96);
const PCR2 = 'c'.repeat(96);
let template: Template;

beforeAll(() => {
  const app = new App();
  const stack = new NitroInferStack(app, 'Test', {
    pcrs: new Map([
      [0, PCR0],
      [1, PCR1],
      [2, PCR2],
    ]),
    keyAdminArns: ['arn:aws:iam::111122223333:role/deployer'],
    sealerRoleArn: 'arn:aws:iam::111122223333:role/sealer',
    certificateArn: 'arn:aws:acm:eu-west-1:111122223333:certificate/abc',
    env: { account: '111122223333', region: 'eu-west-1' },
  });
  template = Template.fromStack(stack);
}, 60_000);

function resources(type: string): Record<string, { Properties: Record<string, unknown> }> {
  return template.findResources(type) as Record<string, { Properties: Record<string, unknown> }>;
}

describe('infrastructure', () => {
  it('has a multi-tier VPC: public, private with egress, isolated subnets', () => {
    const subnets = Object.values(resources('AWS::EC2::Subnet'));
    const tiers = subnets.map(
      (subnet) =>
        (subnet.Properties.Tags as { Key: string; Value: string }[]).find(
          (tag) => tag.Key === 'aws-cdk:subnet-name',
        )?.Value,
    );
    expect(new Set(tiers)).toEqual(new Set(['public', 'instances', 'isolated']));
    expect(subnets.filter((subnet) => subnet.Properties.MapPublicIpOnLaunch === true)).toHaveLength(2);
  });

  it('has network ACLs per tier that admit only the API and HTTPS', () => {
    template.resourceCountIs('AWS::EC2::NetworkAcl', 3);
    template.hasResourceProperties('AWS::EC2::NetworkAclEntry', {
      Egress: false,
      PortRange: { From: PARENT_PORT, To: PARENT_PORT },
      RuleAction: 'allow',
    });
    const entries = Object.values(resources('AWS::EC2::NetworkAclEntry'));
    // Nothing from the internet on every protocol and port: "all traffic" only within the VPC.
    const openToAll = entries.filter(
      (entry) => entry.Properties.Protocol === -1 && entry.Properties.CidrBlock === '0.0.0.0/0',
    );
    expect(openToAll).toEqual([]);
    const fromInternet = entries.filter(
      (entry) => entry.Properties.Egress === false && entry.Properties.CidrBlock === '0.0.0.0/0',
    );
    expect(fromInternet.map((entry) => entry.Properties.PortRange)).toEqual(
      expect.arrayContaining([
        { From: 443, To: 443 },
        { From: 1024, To: 65535 },
      ]),
    );
    expect(
      fromInternet.every((entry) =>
        [443, 1024].includes((entry.Properties.PortRange as { From: number }).From),
      ),
    ).toBe(true);
  });

  it('security groups: the ALB takes 443 from anywhere; instances take the API from the ALB only', () => {
    template.hasResourceProperties('AWS::EC2::SecurityGroup', {
      GroupDescription: Match.stringLikeRegexp('^ALB'),
      SecurityGroupIngress: [Match.objectLike({ CidrIp: '0.0.0.0/0', FromPort: 443, ToPort: 443 })],
    });
    template.hasResourceProperties('AWS::EC2::SecurityGroupIngress', {
      FromPort: PARENT_PORT,
      ToPort: PARENT_PORT,
      SourceSecurityGroupId: Match.anyValue(),
    });
    const ingress = Object.values(resources('AWS::EC2::SecurityGroup')).flatMap(
      (group) =>
        (group.Properties.SecurityGroupIngress as { CidrIp?: string; FromPort?: number }[] | undefined) ?? [],
    );
    expect(ingress.filter((rule) => rule.CidrIp === '0.0.0.0/0').map((rule) => rule.FromPort)).toEqual([443]);
  });

  it('the cluster port is open only from the instances’ own group, never to the ALB or the internet', () => {
    const rules = Object.values(resources('AWS::EC2::SecurityGroupIngress')).filter(
      (rule) => rule.Properties.FromPort === CLUSTER_PORT,
    );
    expect(rules).toHaveLength(1);
    const rule = rules[0]!.Properties as { GroupId: unknown; SourceSecurityGroupId: unknown; ToPort: number };
    expect(rule.ToPort).toBe(CLUSTER_PORT);
    expect(rule.SourceSecurityGroupId).toEqual(rule.GroupId);
    // Egress on the cluster port: one rule, from the instances' group to itself (not the ALB's).
    const egress = Object.values(resources('AWS::EC2::SecurityGroupEgress'))
      .map(
        (entry) =>
          entry.Properties as { FromPort: number; GroupId: unknown; DestinationSecurityGroupId: unknown },
      )
      .filter((entry) => entry.FromPort === CLUSTER_PORT);
    expect(egress).toHaveLength(1);
    expect(egress[0]!.DestinationSecurityGroupId).toEqual(rule.GroupId);
    expect(egress[0]!.GroupId).toEqual(rule.GroupId);
    const inline = Object.values(resources('AWS::EC2::SecurityGroup')).flatMap(
      (group) => (group.Properties.SecurityGroupIngress as { FromPort?: number }[] | undefined) ?? [],
    );
    expect(inline.filter((entry) => entry.FromPort === CLUSTER_PORT)).toEqual([]);
    template.hasResourceProperties('AWS::IAM::Policy', {
      PolicyDocument: Match.objectLike({
        Statement: Match.arrayWith([
          Match.objectLike({ Sid: 'ClusterPeerDiscovery', Action: 'ec2:DescribeInstances', Resource: '*' }),
        ]),
      }),
    });
  });

  it('AWS WAF with managed rule groups and a rate limit is attached to the ALB', () => {
    template.hasResourceProperties('AWS::WAFv2::WebACL', {
      Scope: 'REGIONAL',
      Rules: Match.arrayWith([
        Match.objectLike({
          Statement: {
            ManagedRuleGroupStatement: Match.objectLike({
              Name: 'AWSManagedRulesCommonRuleSet',
              VendorName: 'AWS',
            }),
          },
        }),
        Match.objectLike({
          Statement: {
            ManagedRuleGroupStatement: Match.objectLike({ Name: 'AWSManagedRulesKnownBadInputsRuleSet' }),
          },
        }),
        Match.objectLike({ Statement: { RateBasedStatement: Match.objectLike({ AggregateKeyType: 'IP' }) } }),
      ]),
    });
    template.hasResourceProperties('AWS::WAFv2::WebACLAssociation', {
      ResourceArn: { Ref: Match.stringLikeRegexp('LoadBalancer') },
    });
  });

  it('the artifacts bucket is versioned, KMS-encrypted, private and TLS-only', () => {
    template.hasResourceProperties('AWS::S3::Bucket', {
      VersioningConfiguration: { Status: 'Enabled' },
      BucketEncryption: {
        ServerSideEncryptionConfiguration: [
          Match.objectLike({
            ServerSideEncryptionByDefault: { SSEAlgorithm: 'aws:kms', KMSMasterKeyID: Match.anyValue() },
          }),
        ],
      },
      PublicAccessBlockConfiguration: {
        BlockPublicAcls: true,
        BlockPublicPolicy: true,
        IgnorePublicAcls: true,
        RestrictPublicBuckets: true,
      },
    });
    template.hasResourceProperties('AWS::S3::BucketPolicy', {
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({ Effect: 'Deny', Condition: { Bool: { 'aws:SecureTransport': 'false' } } }),
        ]),
      },
    });
  });

  it('VPC endpoints: a gateway for S3, interfaces for KMS and Secrets Manager', () => {
    template.hasResourceProperties('AWS::EC2::VPCEndpoint', {
      VpcEndpointType: 'Gateway',
      ServiceName: Match.objectLike({}),
    });
    const services = Object.values(resources('AWS::EC2::VPCEndpoint')).map((endpoint) =>
      JSON.stringify(endpoint.Properties.ServiceName),
    );
    expect(services.some((name) => name.includes('.s3'))).toBe(true);
    expect(services.some((name) => name.includes('.kms'))).toBe(true);
    expect(services.some((name) => name.includes('.secretsmanager'))).toBe(true);
  });

  it('the attestation key rotates, and only the instance role decrypts, only with the pinned PCRs', () => {
    const keys = Object.values(resources('AWS::KMS::Key')).filter((key) =>
      String(key.Properties.Description).includes('pinned PCRs'),
    );
    expect(keys).toHaveLength(1);
    const key = keys[0]!.Properties;
    expect(key.EnableKeyRotation).toBe(true);
    const statements = (
      key.KeyPolicy as {
        Statement: { Sid: string; Action: string | string[]; Principal: unknown; Condition?: unknown }[];
      }
    ).Statement;
    const decrypting = statements.filter((statement) =>
      [statement.Action].flat().some((action) => action === 'kms:Decrypt' || action === 'kms:*'),
    );
    expect(decrypting.map((statement) => statement.Sid)).toEqual(['EnclaveDecryptWithAttestation']);
    expect(decrypting[0]!.Condition).toEqual({
      StringEqualsIgnoreCase: {
        'kms:RecipientAttestation:ImageSha384': PCR0,
        'kms:RecipientAttestation:PCR1': PCR1,
        'kms:RecipientAttestation:PCR2': PCR2,
      },
    });
    expect(JSON.stringify(decrypting[0]!.Principal)).toContain('InstanceRole');
    expect(JSON.stringify(statements)).not.toContain(':root');
  });

  it('admin tokens live in Secrets Manager; CloudTrail validates its log files', () => {
    template.hasResourceProperties('AWS::SecretsManager::Secret', {
      GenerateSecretString: Match.objectLike({ PasswordLength: 48 }),
    });
    template.hasResourceProperties('AWS::CloudTrail::Trail', {
      EnableLogFileValidation: true,
      IsLogging: true,
    });
  });

  it('an Auto Scaling group of enclave-enabled instances behind the ALB, health-checked on /v2/health/ready', () => {
    template.hasResourceProperties('AWS::EC2::LaunchTemplate', {
      LaunchTemplateData: Match.objectLike({
        EnclaveOptions: { Enabled: true },
        MetadataOptions: Match.objectLike({ HttpTokens: 'required' }),
      }),
    });
    const launchTemplate = Object.values(resources('AWS::EC2::LaunchTemplate'))[0]!;
    const userData = JSON.stringify(
      (launchTemplate.Properties.LaunchTemplateData as { UserData: unknown }).UserData,
    );
    for (const step of [
      'aws-nitro-enclaves-cli',
      // The release is waited for (it may be uploaded after the stack), then unpacked where the units expect it.
      'waiting for s3://',
      'tar -xzf /opt/nitro-infer.tgz -C /opt/nitro-infer',
      '/release/enclave.eif /opt/nitro-infer/build/enclave.eif',
      // install-parent.sh installs the supervised enclave, the parent and the models units.
      'install-parent.sh',
      `--enclave-cid ${ENCLAVE_CID}`,
      `--cluster-group Test-instances --cluster-port ${CLUSTER_PORT}`,
      '/release/models.txt',
    ]) {
      expect(userData).toContain(step);
    }
    template.hasResourceProperties('AWS::AutoScaling::AutoScalingGroup', {
      MinSize: '2',
      MaxSize: '6',
      HealthCheckType: 'ELB',
    });
    template.hasResourceProperties('AWS::ElasticLoadBalancingV2::TargetGroup', {
      Port: PARENT_PORT,
      HealthCheckPath: '/v2/health/ready',
    });
    template.hasResourceProperties('AWS::ElasticLoadBalancingV2::Listener', { Port: 443, Protocol: 'HTTPS' });
  });

  it('the ALB does not forward /metrics: operational counts stay off the internet', () => {
    template.hasResourceProperties('AWS::ElasticLoadBalancingV2::ListenerRule', {
      Priority: 1,
      Conditions: [{ Field: 'path-pattern', PathPatternConfig: { Values: ['/metrics', '/metrics/*'] } }],
      Actions: [
        Match.objectLike({
          Type: 'fixed-response',
          FixedResponseConfig: Match.objectLike({ StatusCode: '404' }),
        }),
      ],
    });
  });

  it('during an upgrade the previous build gets its own Decrypt statement, never mixed PCRs', () => {
    const app = new App();
    const upgrading = Template.fromStack(
      new NitroInferStack(app, 'Upgrading', {
        pcrs: new Map([
          [0, PCR0],
          [1, PCR1],
          [2, PCR2],
        ]),
        previousPcrs: new Map([
          [0, 'd'.repeat(96)],
          [1, 'e'.repeat(96)],
          [2, PCR2],
        ]),
        keyAdminArns: ['arn:aws:iam::111122223333:role/deployer'],
        certificateArn: 'arn:aws:acm:eu-west-1:111122223333:certificate/abc',
        env: { account: '111122223333', region: 'eu-west-1' },
      }),
    );
    const key = Object.values(upgrading.findResources('AWS::KMS::Key')).find((resource) =>
      JSON.stringify(resource).includes('EnclaveDecryptWithAttestation'),
    ) as { Properties: { KeyPolicy: { Statement: { Sid: string; Condition?: unknown }[] } } };
    const statements = key.Properties.KeyPolicy.Statement;
    const current = statements.find((statement) => statement.Sid === 'EnclaveDecryptWithAttestation');
    const previous = statements.find(
      (statement) => statement.Sid === 'EnclaveDecryptWithAttestationPreviousBuild',
    );
    // Values of one condition key are ORed: [old, new] per PCR would admit an old PCR0 with a new PCR1.
    expect(JSON.stringify(current?.Condition)).toContain(PCR0);
    expect(JSON.stringify(current?.Condition)).not.toContain('d'.repeat(96));
    expect(JSON.stringify(previous?.Condition)).toContain('d'.repeat(96));
    expect(JSON.stringify(previous?.Condition)).toContain('e'.repeat(96));
    expect(JSON.stringify(previous?.Condition)).not.toContain(PCR0);
    expect(JSON.stringify(previous?.Condition)).not.toContain(PCR1);
  }, 60_000);
});
