// Sign the message on stdin with Node's mailauth; print the DKIM-Signature field(s),
// CRLF-terminated, to prepend to the message.
// Usage: node sign.mjs <private-key-file> <domain> <selector> [rsa-sha256|ed25519-sha256]
import { readFileSync } from "node:fs";

import { dkimSign } from "mailauth";

import { readStdin } from "./resolver.mjs";

const [keyFile, domain, selector, algorithm = "rsa-sha256"] = process.argv.slice(2);
if (!keyFile || !domain || !selector) {
  throw new Error("usage: node sign.mjs <key-file> <domain> <selector> [algorithm]");
}
const message = await readStdin();
const signed = await dkimSign(message, {
  canonicalization: "relaxed/relaxed",
  algorithm,
  signatureData: [{ signingDomain: domain, selector, privateKey: readFileSync(keyFile) }],
});
if (signed.errors.length) {
  process.stderr.write(`signing errors: ${JSON.stringify(signed.errors)}\n`);
  process.exit(1);
}
process.stdout.write(signed.signatures);
