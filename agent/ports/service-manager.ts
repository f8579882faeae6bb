/** The service manager that runs the agent (systemd): readiness, a one-line status, the watchdog. */
export interface ServiceManager {
  ready(status: string): Promise<void>;
  status(status: string): Promise<void>;
  watchdog(): Promise<void>;
  stopping(): Promise<void>;
}
