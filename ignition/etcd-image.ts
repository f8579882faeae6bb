// The etcd container image nodes run, pinned in this one place (Flatcar's etcd-member.service
// and the Fedora CoreOS podman unit both take it from here), by tag and by digest: the tag says
// which release, the digest is what the runtime pulls (a moved tag cannot change what runs).
//
// The digest is the multi-architecture index of quay.io/coreos/etcd:v3.5.17. Found without
// registry access, in public projects that pin this tag by digest (three unrelated ones agree:
// a Vitess runtime's image list, an APISIX integration note, a fleet's qualification inputs).
// Check it, or a new tag's, before changing either: `crane digest quay.io/coreos/etcd:v3.5.17`
// or `skopeo inspect --raw docker://quay.io/coreos/etcd:v3.5.17 | sha256sum` (docs/security.md).
export const ETCD_IMAGE = {
  repository: "quay.io/coreos/etcd",
  tag: "v3.5.17",
  digest: "sha256:a055da833a7c013b836ed0822e8ec1f99b059658be255ad8d0fcd31b635ae3d6",
} as const;

/** `tag@digest`: what the units put after `repository:` (docker and podman pull by the digest). */
export function pinnedTag(tag: string, digest: string): string {
  return `${tag}@${digest}`;
}

export const DIGEST_RE = /^sha256:[0-9a-f]{64}$/;
