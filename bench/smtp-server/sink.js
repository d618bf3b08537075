// nodemailer's smtp-server as an accept-and-discard sink for bench/run.py (issue #18).
//
// Usage: node bench/smtp-server/sink.js PORT [--no-greeting-delay]
//
// Every sender and recipient accepted, each body read to its end and dropped;
// no AUTH, no STARTTLS, no reverse DNS (it would ask the machine's resolver),
// no logging. Listens on 127.0.0.1 only.
//
// The greeting delay: smtp-server waits 100 ms after accepting a connection
// before it greets, to catch clients that talk first (SMTPConnection.init,
// `setTimeout(() => this.connectionReady(), 100)` in 3.21.6). No option turns
// it off (neither README.md nor the option list of SMTPServer has one), so it
// caps W1 (one message per connection, 50 sessions) at 500 connections/s.
// `--no-greeting-delay` replaces that one method for the benchmark only, so the
// runner can show the server both as shipped (`smtp-server`) and without the
// delay (`smtp-server-nodelay`). It relies on the private `_setListeners` of the
// pinned version (package.json pins it exactly).
"use strict";

const { SMTPServer } = require("smtp-server");
const { SMTPConnection } = require("smtp-server/lib/smtp-connection.js");

const port = Number(process.argv[2]);
if (!Number.isInteger(port) || port <= 0) {
    console.error("usage: node sink.js PORT [--no-greeting-delay]");
    process.exit(2);
}

if (process.argv.includes("--no-greeting-delay")) {
    SMTPConnection.prototype.init = function init() {
        this._setListeners(() => {
            if (
                this._server.options.maxClients &&
                this._server.connections.size > this._server.options.maxClients
            ) {
                return this.send(421, this.name + " Too many connected clients, try again in a moment", false);
            }
            this.connectionReady();
        });
    };
}

const server = new SMTPServer({
    name: "smtp-server.bench.example.org",
    banner: "smtp-server sink",
    disabledCommands: ["AUTH", "STARTTLS"],
    authOptional: true,
    disableReverseLookup: true,
    logger: false,
    // W4's 1000 idle sessions, and room for BIG-sized bodies (not enforced: read and dropped).
    maxClients: 5000,
    size: 200 * 1024 * 1024,
    closeTimeout: 1000,
    onData(stream, session, callback) {
        stream.on("data", () => {});
        stream.on("end", () => callback(null, "OK queued"));
    },
});

server.on("error", (err) => {
    console.error("smtp-server sink:", err.message);
});

server.listen(port, "127.0.0.1", () => {
    console.log(`listening on 127.0.0.1:${port}`);
});

for (const signal of ["SIGTERM", "SIGINT"]) {
    process.on(signal, () => {
        server.close(() => process.exit(0));
        // closeTimeout ends open sessions after 1 s; never hang the runner.
        setTimeout(() => process.exit(0), 3000).unref();
    });
}
