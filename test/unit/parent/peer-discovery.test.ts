/**
 * Peer discovery (parent/cluster/peer-discovery.ts): configured peers as given; on AWS, one EC2
 * DescribeInstances call filtered on the Auto Scaling group's tag and running state, each private
 * address as a cluster listener URL. Addresses that are not plain IPv4 are dropped, not used.
 */
import type { DescribeInstancesCommand } from '@aws-sdk/client-ec2';
import { describe, expect, it } from 'vitest';
import { peerDiscovery } from '../../../parent/cluster/peer-discovery.ts';

describe('peer discovery', () => {
  it('without a group: the configured peers, and no AWS call', async () => {
    const list = peerDiscovery({
      peers: ['http://10.0.1.7:8444'],
      region: 'eu-west-1',
      port: 8444,
      ec2: {
        send: async () => {
          throw new Error('no call expected');
        },
      },
    });
    expect(await list()).toEqual(['http://10.0.1.7:8444']);
  });

  it('with a group: DescribeInstances by the aws:autoscaling:groupName tag, running only', async () => {
    const sent: DescribeInstancesCommand[] = [];
    const list = peerDiscovery({
      peers: [],
      autoScalingGroup: 'prod-instances',
      region: 'eu-west-1',
      port: 8444,
      ec2: {
        send: (async (command: DescribeInstancesCommand) => {
          sent.push(command);
          return {
            Reservations: [
              { Instances: [{ PrivateIpAddress: '10.0.4.10' }, { PrivateIpAddress: '10.0.5.11' }] },
              { Instances: [{}, { PrivateIpAddress: 'evil.example:1/x' }] },
            ],
          };
        }) as never,
      },
    });
    expect(await list()).toEqual(['http://10.0.4.10:8444', 'http://10.0.5.11:8444']);
    expect(sent).toHaveLength(1);
    expect(sent[0]!.input.Filters).toEqual([
      { Name: 'tag:aws:autoscaling:groupName', Values: ['prod-instances'] },
      { Name: 'instance-state-name', Values: ['running'] },
    ]);
  });
});
