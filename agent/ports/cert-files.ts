/** PEM files: the cluster CA's certificate, a certificate and its key. */
export interface CertBundle {
  ca: string;
  cert: string;
  key: string;
}

/** The three files of a node's bundle, in the order they are written. */
export const CERT_FILES = ["ca", "key", "cert"] as const;
export type CertFile = (typeof CERT_FILES)[number];

/** Where a node keeps the files etcd and the agent present (written with tight modes). */
export interface CertFiles {
  /** null when any of the three is missing. */
  read(): Promise<CertBundle | null>;
  /**
   * Atomically, each file: the key 0600, the certificates 0644, the directory 0700; in the order
   * ca, key, cert, calling `afterFile` after each (the crash-after-every-step tests stop there).
   */
  write(bundle: CertBundle, afterFile?: (file: CertFile) => Promise<void>): Promise<void>;
}
