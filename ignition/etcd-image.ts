// The etcd container image nodes run, pinned in this one place (Flatcar's etcd-member.service
// and the Fedora CoreOS podman unit both take it from here).
export const ETCD_IMAGE = {
  repository: "quay.io/coreos/etcd",
  tag: "v3.5.17",
} as const;
