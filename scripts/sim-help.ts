/** Help of `nitro-infer sim`, apart from the command so `--help` loads nothing heavy. */
export const SIM_HELP = `Usage: nitro-infer sim [options]          (this is \`npm start\`)
       nitro-infer sim attest [options]   (one attestation, offline; see its --help)
       nitro-infer sim kms [options]      (the KMS simulator alone)

Runs the whole system on this machine: simulated NSM and Nitro PKI, the KMS simulator with a key
policy pinning this checkout's PCR0, the enclave in its own process, the parent's HTTP API, the
example models sealed and loaded, and a self-check inference through the client SDK.

Options:
  --port <n>          HTTP port of the parent (default 8080, or NITRO_INFER_HTTP_PORT; 0 = any free)
  --host <addr>       HTTP address (default 127.0.0.1)
  --state-dir <dir>   keys, PKI, sockets and configs (default .nitro-infer/sim)
  --json              print one JSON line when ready, instead of the text summary
  -h, --help          show this help

Through npm: \`npm start -- --port 9000\`, or \`npm start --port 9000\` (npm keeps that flag as its
own config; the stack reads it from there).

It supervises what it starts: one stack per state directory (a pid lock; a stale one left by a
killed stack is taken over, with its sockets), an enclave that dies is restarted with backoff and
the parent reloads its models, and SIGINT, SIGTERM or SIGHUP — or the exit of whoever started it,
npm included — stops everything.`;
