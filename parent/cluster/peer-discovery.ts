/**
 * Where peer parents are: the configured `cluster.peers`, plus — on AWS — the other running
 * instances of this Auto Scaling group, found with EC2 `DescribeInstances` filtered on the tag AWS
 * puts on every group member (`aws:autoscaling:groupName`). DescribeInstances is chosen over the
 * Auto Scaling API because one call returns the private addresses too (the ASG API returns only
 * instance ids). Discovery is untrusted like everything else: a wrong list costs availability,
 * never the key, which moves only between enclaves that verify each other.
 */
import { DescribeInstancesCommand, EC2Client } from '@aws-sdk/client-ec2';

/** Instances consulted per discovery; an Auto Scaling group this size is far past one sync round's budget. */
export const MAX_DISCOVERED_INSTANCES = 64;

export interface PeerDiscoveryOptions {
  readonly peers: readonly string[];
  readonly autoScalingGroup?: string;
  readonly region: string;
  /** The port peers' cluster listeners use (the group's members share one configuration). */
  readonly port: number;
  readonly ec2?: Pick<EC2Client, 'send'>;
}

/** A function that lists peer base URLs on each call. */
export function peerDiscovery(options: PeerDiscoveryOptions): () => Promise<readonly string[]> {
  const group = options.autoScalingGroup;
  if (group === undefined) return async () => options.peers;
  const ec2 = options.ec2 ?? new EC2Client({ region: options.region });
  return async () => {
    const reply = await ec2.send(
      new DescribeInstancesCommand({
        Filters: [
          { Name: 'tag:aws:autoscaling:groupName', Values: [group] },
          { Name: 'instance-state-name', Values: ['running'] },
        ],
        MaxResults: MAX_DISCOVERED_INSTANCES,
      }),
    );
    const addresses = (reply.Reservations ?? [])
      .flatMap((reservation) => reservation.Instances ?? [])
      .map((instance) => instance.PrivateIpAddress)
      .filter((address): address is string => typeof address === 'string' && /^[0-9.]{7,15}$/.test(address))
      .slice(0, MAX_DISCOVERED_INSTANCES);
    // This instance is among them; its own status equals its enclave's, so it is never "ahead".
    return [...options.peers, ...addresses.map((address) => `http://${address}:${options.port}`)];
  };
}
