// The DNS resolver handed to mailauth: every lookup goes to our loopback DNS server
// (mailio_trio.testing.dns) on 127.0.0.1:<port>, never to the machine's resolver.
import { Resolver } from "node:dns/promises";

export function loopbackResolver(port) {
  if (!/^\d+$/.test(String(port ?? ""))) {
    throw new Error(`usage: a DNS port on 127.0.0.1 (got ${port})`);
  }
  // One attempt with a short timeout: a silent server ends the lookup quickly.
  const resolver = new Resolver({ timeout: 2000, tries: 1 });
  resolver.setServers([`127.0.0.1:${port}`]);
  // mailauth calls resolver(name, rrtype) as it would dns.promises.resolve.
  return async (name, rrtype) => resolver.resolve(name, rrtype);
}

export async function readStdin() {
  const chunks = [];
  for await (const chunk of process.stdin) {
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}
