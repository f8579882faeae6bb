// The nodes' OS image: the official Flatcar or Fedora CoreOS AMI for the stack's region and the
// instance type's architecture, found by owner and name with a CDK context lookup (cached in
// cdk.context.json, as CDK users expect), or an AMI the user names, checked the same way. A
// lookup that found nothing is a synth-time EtcdClusterPropsError that names the value and the fix.
import { ContextProvider, aws_ec2 as ec2, Stack, Token } from "aws-cdk-lib";
import type { Construct } from "constructs";
import type { NodeArch, NodeOs } from "../../ignition/render.js";
import { EtcdClusterPropsError } from "./props.js";

/** EC2's name for each architecture (DescribeImages' `architecture` filter). */
export const EC2_ARCH: Record<NodeArch, string> = { x64: "x86_64", arm64: "arm64" };

/**
 * The official images: the publisher's account and how its stable images are named. Flatcar:
 * https://www.flatcar.org/docs/latest/installing/cloud/aws-ec2/ (account 075585003325, names
 * `Flatcar-stable-<version>[-arm64]-hvm`). Fedora CoreOS:
 * https://docs.fedoraproject.org/en-US/fedora-coreos/provisioning-aws/ (the Fedora project's
 * account 125523088429, names `fedora-coreos-<version>-<arch>`, the stream in the description).
 * Both are the commercial partition's accounts (not China or GovCloud: give etcd:amis there).
 */
export const OFFICIAL_IMAGES: Record<
  NodeOs,
  { label: string; owner: string; name: string; filters: Record<string, string[]> }
> = {
  flatcar: {
    label: "Flatcar Container Linux (stable)",
    owner: "075585003325",
    name: "Flatcar-stable-*",
    filters: { "virtualization-type": ["hvm"] },
  },
  fcos: {
    label: "Fedora CoreOS (stable)",
    owner: "125523088429",
    name: "fedora-coreos-*",
    filters: { "virtualization-type": ["hvm"], description: ["Fedora CoreOS stable *"] },
  },
};

interface Lookup {
  owners?: string[];
  name: string;
  filters: Record<string, string[]>;
}

function lookupFor(os: NodeOs, arch: NodeArch, ami: string | undefined): Lookup {
  if (ami !== undefined) {
    // The user's image, checked: it must exist for this account and region, with this architecture.
    return { name: "*", filters: { "image-id": [ami], architecture: [EC2_ARCH[arch]] } };
  }
  const o = OFFICIAL_IMAGES[os];
  return { owners: [o.owner], name: o.name, filters: { ...o.filters, architecture: [EC2_ARCH[arch]] } };
}

/** What MachineImage.lookup sends to DescribeImages (its own defaults added), for the cache key. */
function providerProps(l: Lookup): Record<string, unknown> {
  return {
    owners: l.owners,
    filters: { name: [l.name], state: ["available"], "image-type": ["machine"], ...l.filters },
  };
}

/**
 * The cdk.context.json entry a lookup for these settings reads (`ami:account=...:region=...`):
 * tests and offline synths provide it as a CDK user's cache would.
 */
export function amiContextKey(scope: Construct, os: NodeOs, arch: NodeArch, ami?: string): string {
  return ContextProvider.getKey(scope, { provider: "ami", props: providerProps(lookupFor(os, arch, ami)) })
    .key;
}

export interface NodeImageOptions {
  os: NodeOs;
  architecture: NodeArch;
  /** Per-region override (etcd:amis); without it the official image is looked up. */
  amis: Record<string, string> | undefined;
}

/** The nodes' image for the stack's region; refuses (EtcdClusterPropsError) with the value and the fix. */
export function nodeImage(scope: Construct, o: NodeImageOptions): ec2.IMachineImage {
  const stack = Stack.of(scope);
  const region = stack.region;
  const archName = EC2_ARCH[o.architecture];
  const official = OFFICIAL_IMAGES[o.os];
  let ami: string | undefined;
  if (o.amis !== undefined) {
    if (Token.isUnresolved(region)) {
      throw new EtcdClusterPropsError(
        "amis maps regions to images, so the stack needs a region: deploy it to one (env: { region }, context key etcd:region)",
      );
    }
    ami = o.amis[region];
    if (ami === undefined) {
      throw new EtcdClusterPropsError(
        `amis has no image for ${region} (it has ${Object.keys(o.amis).join(", ")}): add "${region}": "ami-..." (a ${official.label} ${archName} image), or remove etcd:amis to use the official image found by lookup`,
      );
    }
    if (Token.isUnresolved(stack.account)) {
      // No account, no lookup: the image is taken as given (an offline synth).
      return ec2.MachineImage.genericLinux({ [region]: ami });
    }
  } else if (Token.isUnresolved(stack.account) || Token.isUnresolved(region)) {
    throw new EtcdClusterPropsError(
      `the ${official.label} image is found by a lookup in the stack's account and region, and the stack has ${Token.isUnresolved(stack.account) ? "no account" : "no region"}: run cdk with credentials (CDK_DEFAULT_ACCOUNT), or set the context keys etcd:account and etcd:region, or name the image with etcd:amis`,
    );
  }
  const l = lookupFor(o.os, o.architecture, ami);
  const cached = stack.node.tryGetContext(amiContextKey(scope, o.os, o.architecture, ami)) as unknown;
  if (cached && typeof cached === "object" && "$providerError" in cached) {
    const why = String((cached as { $providerError: unknown }).$providerError);
    throw new EtcdClusterPropsError(
      ami !== undefined
        ? `amis[${region}] is ${ami}, which is not an ${archName} image this account can use in ${region} (${why}): give the ${archName} ${official.label} image, or set etcd:architecture to the image's, then delete its entry from cdk.context.json (cdk context --reset)`
        : `no ${official.label} image for ${archName} in ${region} from account ${official.owner} named ${official.name} (${why}): name one with etcd:amis {"${region}": "ami-..."}, or choose another region or etcd:os, then cdk context --reset the failed lookup`,
    );
  }
  return ec2.MachineImage.lookup({ name: l.name, owners: l.owners, filters: l.filters });
}
