// Imported first by both entry points.
// gRPC hands the host to TLS as the server name even when it is an IP (members are addressed by IP),
// and Node warns about that (DEP0123) on every connection. The certificate is still checked against
// the IP. Every other warning is printed as Node would.
process.removeAllListeners("warning");
process.on("warning", (warning: Error & { code?: string }) => {
  if (warning.code !== "DEP0123") process.stderr.write(`(node) ${warning.name}: ${warning.message}\n`);
});

export {};
