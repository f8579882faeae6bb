/** Where each message first appears in a log (-1 when it does not), for checking their order. */
export function messagePositions(log: string, messages: string[]): number[] {
  return messages.map((m) => log.indexOf(m));
}
