/**
 * etcd's own service on this node (systemd's etcd-member.service), for what only a restart does:
 * etcd 3.4/3.5 read the trusted CA files once, at start.
 */
export interface EtcdService {
  /** Restarts etcd; its ExecStartPre (`etcd-agent boot`) runs first and records what etcd loads. */
  restart(): Promise<void>;
  /** The trusted CA bundle etcd loaded at its last start, as boot recorded it; null when unknown. */
  loadedTrust(): Promise<string | null>;
  /** Boot, just before etcd starts: the bundle etcd is about to load. */
  recordLoadedTrust(bundle: string): Promise<void>;
  /** What this node last followed of the CA secret (a stale read is not followed); null: nothing yet. */
  followedCa(): Promise<FollowedCa | null>;
  recordFollowedCa(followed: FollowedCa): Promise<void>;
}

/** The CA secret's generation, phase and trusted set (sorted sha256 of each CA) a node followed. */
export interface FollowedCa {
  generation: number;
  phase: string;
  trust: string[];
}

/**
 * A lock over etcd itself (a key under a lease): one member at a time restarts its etcd. The lease
 * expires on its own if the holder dies, so a crash never leaves it held for longer than its TTL.
 */
export interface RestartLock {
  /** Takes the lock for `owner`, or finds it held already by `owner`; otherwise the holder. */
  acquire(endpoints: string[], owner: string, ttlSeconds: number): Promise<{ held: boolean; holder: string }>;
  /** Lets it go if `owner` holds it. */
  release(endpoints: string[], owner: string): Promise<void>;
}

/** A client's PEM material for one probe: the CAs to trust, a certificate and its key. */
export interface ProbeCredentials {
  trust: string;
  cert: string;
  key: string;
}

/** What a CA rotation's operator asks of each member, over TLS, with credentials it makes. */
export interface MemberProbe {
  /** The members (their client URLs, and whether each is a learner), from any endpoint that answers; null when none does. */
  members(
    endpoints: string[],
    client: ProbeCredentials,
  ): Promise<Array<{ clientUrls: string[]; isLearner: boolean }> | null>;
  /** Whether the member at `url` answers a request from this client (its etcd trusts the client's CA). */
  accepts(url: string, client: ProbeCredentials): Promise<boolean>;
  /** The certificate the member at `url` presents now (PEM), or null when it cannot be reached. */
  servedCert(url: string, client: ProbeCredentials): Promise<string | null>;
}
