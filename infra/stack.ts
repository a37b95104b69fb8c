/**
 * The AWS deployment (DESIGN.md 7) as one CDK stack: a multi-tier VPC with network ACLs and
 * least-privilege security groups; an internet-facing ALB with AWS WAF; an Auto Scaling group of
 * enclave-enabled instances (parent + one enclave each) in private subnets; the artifacts bucket
 * (versioned, KMS-encrypted, public access blocked, TLS only); VPC endpoints for S3, KMS and
 * Secrets Manager; the attestation CMK whose policy pins the build's PCRs; Secrets Manager for
 * admin tokens; CloudTrail with log-file validation. Synthesised in tests, never deployed by CI.
 */
import { CfnOutput, Duration, RemovalPolicy, Stack } from 'aws-cdk-lib';
import type { StackProps } from 'aws-cdk-lib';
import * as autoscaling from 'aws-cdk-lib/aws-autoscaling';
import * as cloudtrail from 'aws-cdk-lib/aws-cloudtrail';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as elbv2 from 'aws-cdk-lib/aws-elasticloadbalancingv2';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as s3 from 'aws-cdk-lib/aws-s3';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import * as wafv2 from 'aws-cdk-lib/aws-wafv2';
import type { Construct } from 'constructs';
import { KEY_ADMIN_ACTIONS, attestationCondition } from '../shared/key-policy.ts';

/** What a deployment needs to know. */
export interface NitroInferStackProps extends StackProps {
  /** The build's PCRs (hex), from build/pcrs.json: 0, 1, 2 and 8 when the EIF is signed. */
  readonly pcrs: ReadonlyMap<number, string>;
  /**
   * The running build's PCRs during a rolling upgrade: the key also releases to them until the
   * upgrade is done and the stack is deployed again without them (docs/deploy.md "Rolling upgrade").
   */
  readonly previousPcrs?: ReadonlyMap<number, string>;
  /**
   * Who administers the attestation key. Include the role CloudFormation creates it as, the CDK
   * bootstrap's cfn-exec role: KMS refuses a policy that would lock its creator out.
   */
  readonly keyAdminArns: readonly string[];
  /** The operator role that seals models. */
  readonly sealerRoleArn?: string;
  /** ACM certificate for the ALB's HTTPS listener. */
  readonly certificateArn: string;
  /** Where the release (nitro-infer tarball and enclave.eif) lives in the artifacts bucket. */
  readonly releasePrefix?: string;
  readonly instanceType?: string;
  readonly minInstances?: number;
  readonly maxInstances?: number;
  /** CPUs given to each enclave (2: one physical core on Intel instance types). */
  readonly enclaveCpus?: number;
  /** MiB given to each enclave; default run-enclave.sh's: 4 × the EIF, at least 2048. Models need room. */
  readonly enclaveMemoryMib?: number;
}

/** The parent's HTTP port behind the ALB. */
export const PARENT_PORT = 8080;
/**
 * The parents' cluster listener: peer parents relay the OHTTP cluster key exchange between their
 * enclaves on it (docs/protocols.md "Cluster key"). Open only between the instances themselves.
 */
export const CLUSTER_PORT = 8444;
/** The enclave's fixed CID on every instance. */
export const ENCLAVE_CID = 16;

/** What an instance's boot script needs. */
export interface BootOptions {
  readonly bucket: string;
  readonly releasePrefix: string;
  readonly region: string;
  readonly enclaveCpus: number;
  readonly enclaveMemoryMib?: number;
  readonly tokensSecret: string;
  readonly groupName: string;
  /** Where the release is unpacked; tests point it at a temporary folder. */
  readonly installDir?: string;
  /** Seconds between looks for the release (15; tests wait less). */
  readonly retrySeconds?: number;
}

/** How long a booting instance waits for the release in the bucket: 480 × 15 s = 2 h. */
export const RELEASE_WAIT_ATTEMPTS = 480;

/**
 * The instance user data as shell lines (exported so a test runs them with stand-ins). The release
 * may be uploaded after the stack created the bucket and the group: an instance waits for it rather
 * than failing its boot (the ALB's health check keeps it out of service meanwhile). The models list
 * (`models.txt` beside the release) is read again at every start of the parent.
 */
export function bootCommands(options: BootOptions): string[] {
  const dir = options.installDir ?? '/opt/nitro-infer';
  const release = `s3://${options.bucket}/${options.releasePrefix}`;
  const fetch = (name: string, target: string) =>
    `for i in $(seq 1 ${RELEASE_WAIT_ATTEMPTS}); do aws s3 cp --only-show-errors ${release}${name} ${target} && break; ` +
    `[ "$i" = ${RELEASE_WAIT_ATTEMPTS} ] && exit 1; echo "waiting for ${release}${name}"; sleep ${options.retrySeconds ?? 15}; done`;
  return [
    'set -euo pipefail',
    'dnf install -y aws-nitro-enclaves-cli aws-nitro-enclaves-cli-devel nodejs20',
    'systemctl enable --now nitro-enclaves-allocator.service',
    fetch('nitro-infer.tgz', `${dir}.tgz`),
    `mkdir -p ${dir} && tar -xzf ${dir}.tgz -C ${dir} && rm ${dir}.tgz`,
    fetch('enclave.eif', `${dir}/build/enclave.eif`),
    `${dir}/scripts/deploy/install-parent.sh --region ${options.region} --install-dir ${dir} ` +
      `--enclave-cid ${ENCLAVE_CID} --enclave-cpus ${options.enclaveCpus} ` +
      (options.enclaveMemoryMib === undefined ? '' : `--enclave-memory-mib ${options.enclaveMemoryMib} `) +
      `--tokens-secret ${options.tokensSecret} ` +
      `--cluster-group ${options.groupName} --cluster-port ${CLUSTER_PORT} --models-list ${release}models.txt`,
  ];
}

export class NitroInferStack extends Stack {
  constructor(scope: Construct, id: string, props: NitroInferStackProps) {
    super(scope, id, props);
    const releasePrefix = props.releasePrefix ?? 'release/';

    // --- Network: public (ALB), private with egress (instances), isolated (nothing reaches out).
    const vpc = new ec2.Vpc(this, 'Vpc', {
      maxAzs: 2,
      natGateways: 1,
      subnetConfiguration: [
        { name: 'public', subnetType: ec2.SubnetType.PUBLIC, cidrMask: 24 },
        { name: 'instances', subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS, cidrMask: 22 },
        { name: 'isolated', subnetType: ec2.SubnetType.PRIVATE_ISOLATED, cidrMask: 24 },
      ],
    });
    vpc.addGatewayEndpoint('S3Endpoint', { service: ec2.GatewayVpcEndpointAwsService.S3 });

    const albSecurityGroup = new ec2.SecurityGroup(this, 'AlbSecurityGroup', {
      vpc,
      description: 'ALB: HTTPS from the internet, HTTP to the parents only',
      allowAllOutbound: false,
    });
    albSecurityGroup.addIngressRule(ec2.Peer.anyIpv4(), ec2.Port.tcp(443), 'HTTPS from clients');
    const instanceSecurityGroup = new ec2.SecurityGroup(this, 'InstanceSecurityGroup', {
      vpc,
      description: 'Parents: the API from the ALB only; HTTPS out to endpoints and package mirrors',
      allowAllOutbound: false,
    });
    instanceSecurityGroup.addIngressRule(albSecurityGroup, ec2.Port.tcp(PARENT_PORT), 'API from the ALB');
    instanceSecurityGroup.addEgressRule(ec2.Peer.anyIpv4(), ec2.Port.tcp(443), 'HTTPS: VPC endpoints, NAT');
    albSecurityGroup.addEgressRule(instanceSecurityGroup, ec2.Port.tcp(PARENT_PORT), 'to the parents');
    // Parent to parent for the cluster key exchange only: the group to itself, on one port.
    instanceSecurityGroup.addIngressRule(
      instanceSecurityGroup,
      ec2.Port.tcp(CLUSTER_PORT),
      'cluster key exchange from peer parents',
    );
    instanceSecurityGroup.addEgressRule(
      instanceSecurityGroup,
      ec2.Port.tcp(CLUSTER_PORT),
      'cluster key exchange to peer parents',
    );
    const endpointSecurityGroup = new ec2.SecurityGroup(this, 'EndpointSecurityGroup', {
      vpc,
      description: 'Interface endpoints: HTTPS from the parents',
      allowAllOutbound: false,
    });
    endpointSecurityGroup.addIngressRule(instanceSecurityGroup, ec2.Port.tcp(443), 'HTTPS from the parents');
    for (const [name, service] of [
      ['KmsEndpoint', ec2.InterfaceVpcEndpointAwsService.KMS],
      ['SecretsManagerEndpoint', ec2.InterfaceVpcEndpointAwsService.SECRETS_MANAGER],
    ] as const) {
      vpc.addInterfaceEndpoint(name, {
        service,
        subnets: { subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS },
        securityGroups: [endpointSecurityGroup],
        privateDnsEnabled: true,
      });
    }
    this.#networkAcls(vpc);

    // --- Keys and secrets.
    const attestationKey = new kms.Key(this, 'AttestationKey', {
      description: 'nitro-infer: data keys released only to enclaves with the pinned PCRs',
      enableKeyRotation: true,
      removalPolicy: RemovalPolicy.RETAIN,
      policy: new iam.PolicyDocument(),
    });
    const artifactsKey = new kms.Key(this, 'ArtifactsBucketKey', {
      description: 'nitro-infer: encryption at rest of the (already sealed) artifacts bucket',
      enableKeyRotation: true,
      removalPolicy: RemovalPolicy.RETAIN,
    });
    const artifacts = new s3.Bucket(this, 'Artifacts', {
      versioned: true,
      encryption: s3.BucketEncryption.KMS,
      encryptionKey: artifactsKey,
      bucketKeyEnabled: true,
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      enforceSSL: true,
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
      removalPolicy: RemovalPolicy.RETAIN,
      // MFA Delete cannot be set by CloudFormation: see docs/deploy.md for the root-account step.
    });
    const adminTokens = new secretsmanager.Secret(this, 'AdminTokens', {
      description: 'nitro-infer admin bearer token(s) for PUT/DELETE /admin/models',
      generateSecretString: { passwordLength: 48, excludePunctuation: true },
    });

    // --- Instances: parent + one enclave each.
    const role = new iam.Role(this, 'InstanceRole', {
      assumedBy: new iam.ServicePrincipal('ec2.amazonaws.com'),
      description: 'nitro-infer parent: reads sealed artifacts, pushes credentials to its enclave',
      managedPolicies: [iam.ManagedPolicy.fromAwsManagedPolicyName('AmazonSSMManagedInstanceCore')],
    });
    artifacts.grantRead(role);
    adminTokens.grantRead(role);
    // Peer discovery: the running members of the group. DescribeInstances has no resource-level
    // permissions; it reveals instance metadata only, never a key (docs/protocols.md).
    role.addToPolicy(
      new iam.PolicyStatement({
        sid: 'ClusterPeerDiscovery',
        actions: ['ec2:DescribeInstances'],
        resources: ['*'],
      }),
    );
    // Named here (not generated) so the instances' user data can name it without a dependency cycle.
    const groupName = `${this.stackName}-instances`;

    const pcrs = attestationCondition(props.pcrs);
    attestationKey.addToResourcePolicy(
      new iam.PolicyStatement({
        sid: 'KeyAdministration',
        principals: props.keyAdminArns.map((arn) => new iam.ArnPrincipal(arn)),
        actions: [...KEY_ADMIN_ACTIONS],
        resources: ['*'],
      }),
    );
    attestationKey.addToResourcePolicy(
      new iam.PolicyStatement({
        sid: 'EnclaveDecryptWithAttestation',
        principals: [new iam.ArnPrincipal(role.roleArn)],
        actions: ['kms:Decrypt'],
        resources: ['*'],
        conditions: { StringEqualsIgnoreCase: pcrs },
      }),
    );
    if (props.previousPcrs !== undefined) {
      // A statement of its own, not a second value per condition key: values of one key are ORed
      // and keys ANDed, so [old, new] per PCR would also admit an old PCR0 with a new PCR1.
      attestationKey.addToResourcePolicy(
        new iam.PolicyStatement({
          sid: 'EnclaveDecryptWithAttestationPreviousBuild',
          principals: [new iam.ArnPrincipal(role.roleArn)],
          actions: ['kms:Decrypt'],
          resources: ['*'],
          conditions: { StringEqualsIgnoreCase: attestationCondition(props.previousPcrs) },
        }),
      );
    }
    if (props.sealerRoleArn !== undefined) {
      attestationKey.addToResourcePolicy(
        new iam.PolicyStatement({
          sid: 'SealModels',
          principals: [new iam.ArnPrincipal(props.sealerRoleArn)],
          actions: [
            'kms:GenerateDataKey',
            'kms:GenerateDataKeyWithoutPlaintext',
            'kms:Encrypt',
            'kms:DescribeKey',
          ],
          resources: ['*'],
        }),
      );
    }

    const userData = ec2.UserData.forLinux();
    userData.addCommands(
      ...bootCommands({
        bucket: artifacts.bucketName,
        releasePrefix,
        region: this.region,
        enclaveCpus: props.enclaveCpus ?? 2,
        ...(props.enclaveMemoryMib === undefined ? {} : { enclaveMemoryMib: props.enclaveMemoryMib }),
        tokensSecret: adminTokens.secretName,
        groupName,
      }),
    );
    const launchTemplate = new ec2.LaunchTemplate(this, 'LaunchTemplate', {
      instanceType: new ec2.InstanceType(props.instanceType ?? 'm6i.xlarge'),
      machineImage: ec2.MachineImage.latestAmazonLinux2023(),
      role,
      securityGroup: instanceSecurityGroup,
      userData,
      nitroEnclaveEnabled: true,
      requireImdsv2: true,
      blockDevices: [
        {
          deviceName: '/dev/xvda',
          volume: ec2.BlockDeviceVolume.ebs(30, { encrypted: true, volumeType: ec2.EbsDeviceVolumeType.GP3 }),
        },
      ],
    });
    const group = new autoscaling.AutoScalingGroup(this, 'Instances', {
      vpc,
      vpcSubnets: { subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS },
      launchTemplate,
      autoScalingGroupName: groupName,
      minCapacity: props.minInstances ?? 2,
      maxCapacity: props.maxInstances ?? 6,
      healthChecks: autoscaling.HealthChecks.withAdditionalChecks({
        additionalTypes: [autoscaling.AdditionalHealthCheckType.ELB],
        gracePeriod: Duration.minutes(10),
      }),
    });

    // --- Front door: ALB with WAF, HTTPS only.
    const alb = new elbv2.ApplicationLoadBalancer(this, 'LoadBalancer', {
      vpc,
      internetFacing: true,
      securityGroup: albSecurityGroup,
      vpcSubnets: { subnetType: ec2.SubnetType.PUBLIC },
      dropInvalidHeaderFields: true,
    });
    const listener = alb.addListener('Https', {
      port: 443,
      protocol: elbv2.ApplicationProtocol.HTTPS,
      certificates: [elbv2.ListenerCertificate.fromArn(props.certificateArn)],
      sslPolicy: elbv2.SslPolicy.TLS13_RES,
      open: false,
    });
    listener.addTargets('Parents', {
      port: PARENT_PORT,
      protocol: elbv2.ApplicationProtocol.HTTP,
      targets: [group],
      healthCheck: { path: '/v2/health/ready', healthyHttpCodes: '200', interval: Duration.seconds(15) },
      deregistrationDelay: Duration.seconds(30),
    });
    // /metrics is for the operator, not the internet: the ALB answers 404 for it (scrape it on the
    // instance or through an SSM port forward; docs/deploy.md "What to watch").
    listener.addAction('NoPublicMetrics', {
      priority: 1,
      conditions: [elbv2.ListenerCondition.pathPatterns(['/metrics', '/metrics/*'])],
      action: elbv2.ListenerAction.fixedResponse(404, {
        contentType: 'text/plain',
        messageBody: 'not found',
      }),
    });
    const webAcl = new wafv2.CfnWebACL(this, 'WebAcl', {
      scope: 'REGIONAL',
      defaultAction: { allow: {} },
      visibilityConfig: {
        cloudWatchMetricsEnabled: true,
        metricName: 'nitro-infer',
        sampledRequestsEnabled: false,
      },
      rules: [
        ...[
          'AWSManagedRulesCommonRuleSet',
          'AWSManagedRulesKnownBadInputsRuleSet',
          'AWSManagedRulesAmazonIpReputationList',
        ].map((name, priority) => ({
          name,
          priority,
          overrideAction: { none: {} },
          statement: {
            managedRuleGroupStatement: {
              vendorName: 'AWS',
              name,
              // Encapsulated OHTTP bodies are opaque binary: body inspection rules would only misfire.
              ...(name === 'AWSManagedRulesCommonRuleSet'
                ? { excludedRules: [{ name: 'SizeRestrictions_BODY' }, { name: 'CrossSiteScripting_BODY' }] }
                : {}),
            },
          },
          visibilityConfig: {
            cloudWatchMetricsEnabled: true,
            metricName: name,
            sampledRequestsEnabled: false,
          },
        })),
        {
          name: 'RateLimitPerIp',
          priority: 10,
          action: { block: {} },
          statement: { rateBasedStatement: { limit: 3000, aggregateKeyType: 'IP' } },
          visibilityConfig: {
            cloudWatchMetricsEnabled: true,
            metricName: 'RateLimitPerIp',
            sampledRequestsEnabled: false,
          },
        },
      ],
    });
    new wafv2.CfnWebACLAssociation(this, 'WebAclAssociation', {
      resourceArn: alb.loadBalancerArn,
      webAclArn: webAcl.attrArn,
    });

    // --- Audit: every KMS call (who decrypted what, with which attestation) lands in CloudTrail.
    const trailBucket = new s3.Bucket(this, 'TrailLogs', {
      encryption: s3.BucketEncryption.S3_MANAGED,
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      enforceSSL: true,
      versioned: true,
      removalPolicy: RemovalPolicy.RETAIN,
    });
    new cloudtrail.Trail(this, 'Trail', {
      bucket: trailBucket,
      enableFileValidation: true,
      includeGlobalServiceEvents: true,
      isMultiRegionTrail: true,
    });

    new CfnOutput(this, 'Endpoint', { value: `https://${alb.loadBalancerDnsName}` });
    new CfnOutput(this, 'ArtifactsBucket', { value: artifacts.bucketName });
    new CfnOutput(this, 'AttestationKeyArn', { value: attestationKey.keyArn });
    new CfnOutput(this, 'AdminTokensSecret', { value: adminTokens.secretName });
    new CfnOutput(this, 'AutoScalingGroup', { value: groupName });
  }

  /** Network ACLs: a second, stateless layer that admits only what the path needs. */
  #networkAcls(vpc: ec2.Vpc): void {
    const cidr = ec2.AclCidr.ipv4(vpc.vpcCidrBlock);
    const anywhere = ec2.AclCidr.anyIpv4();
    const ephemeral = ec2.AclTraffic.tcpPortRange(1024, 65_535);
    const acls = [
      {
        id: 'PublicAcl',
        subnets: ec2.SubnetType.PUBLIC,
        inbound: [
          [100, anywhere, ec2.AclTraffic.tcpPort(443)],
          [110, anywhere, ephemeral],
        ],
        outbound: [
          [100, cidr, ec2.AclTraffic.tcpPort(PARENT_PORT)],
          [110, anywhere, ephemeral],
          [120, anywhere, ec2.AclTraffic.tcpPort(443)],
        ],
      },
      {
        id: 'InstancesAcl',
        subnets: ec2.SubnetType.PRIVATE_WITH_EGRESS,
        inbound: [
          [100, cidr, ec2.AclTraffic.tcpPort(PARENT_PORT)],
          [110, anywhere, ephemeral],
          [120, cidr, ec2.AclTraffic.tcpPort(443)],
          [130, cidr, ec2.AclTraffic.tcpPort(CLUSTER_PORT)],
        ],
        outbound: [
          [100, anywhere, ec2.AclTraffic.tcpPort(443)],
          [110, cidr, ephemeral],
          [120, cidr, ec2.AclTraffic.tcpPort(CLUSTER_PORT)],
        ],
      },
      {
        id: 'IsolatedAcl',
        subnets: ec2.SubnetType.PRIVATE_ISOLATED,
        inbound: [[100, cidr, ec2.AclTraffic.allTraffic()]],
        outbound: [[100, cidr, ec2.AclTraffic.allTraffic()]],
      },
    ] as const;
    for (const acl of acls) {
      const networkAcl = new ec2.NetworkAcl(this, acl.id, {
        vpc,
        subnetSelection: { subnetType: acl.subnets },
      });
      for (const [direction, entries] of [
        [ec2.TrafficDirection.INGRESS, acl.inbound],
        [ec2.TrafficDirection.EGRESS, acl.outbound],
      ] as const) {
        for (const [ruleNumber, range, traffic] of entries) {
          networkAcl.addEntry(`${direction === ec2.TrafficDirection.INGRESS ? 'In' : 'Out'}${ruleNumber}`, {
            ruleNumber,
            cidr: range,
            traffic,
            direction,
            ruleAction: ec2.Action.ALLOW,
          });
        }
      }
    }
  }
}
