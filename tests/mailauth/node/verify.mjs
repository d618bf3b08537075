// Verify the DKIM signatures and the ARC chain of the message on stdin with Node's
// mailauth; print one JSON object: {"dkim": [...], "arc": {...}}.
// Usage: node verify.mjs <dns-port> < message
import { arc, dkimVerify } from "mailauth";

import { loopbackResolver, readStdin } from "./resolver.mjs";

const resolver = loopbackResolver(process.argv[2]);
const message = await readStdin();
const verified = await dkimVerify(message, { resolver });
const dkim = verified.results.map((row) => ({
  result: row.status.result,
  comment: row.status.comment ?? "",
  domain: row.signingDomain ?? "",
  selector: row.selector ?? "",
  algorithm: row.algo ?? "",
  info: row.info,
}));
// The same ARC check authenticate() runs, on the chain dkimVerify collected.
const chain = await arc(verified.arc, { resolver });
const out = {
  dkim,
  arc: {
    result: chain.status.result,
    comment: chain.status.comment ?? "",
    instance: chain.i,
  },
};
process.stdout.write(JSON.stringify(out) + "\n");
