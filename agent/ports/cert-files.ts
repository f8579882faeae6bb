/** PEM files: the cluster CA's certificate, a certificate and its key. */
export interface CertBundle {
  ca: string;
  cert: string;
  key: string;
}

/** Where a node keeps the files etcd and the agent present (written with tight modes). */
export interface CertFiles {
  /** null when any of the three is missing. */
  read(): Promise<CertBundle | null>;
  /** Atomically, each file: the key 0600, the certificates 0644, the directory 0700. */
  write(bundle: CertBundle): Promise<void>;
}
