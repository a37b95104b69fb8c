#!/usr/bin/env bash
# Starts the nitro-infer enclave on this (enclave-enabled) parent instance:
#   1. sizes the Nitro Enclaves allocator: memory ≥ 4 × the EIF size (the EIF is unpacked into
#      enclave memory and onnxruntime needs room for models), CPUs as given;
#   2. restarts the allocator so the reservation takes effect (only when it changed);
#   3. nitro-cli run-enclave with a fixed CID and name, so the parent's config can name vsock:<cid>:5000.
# With --supervise it stays in the foreground (the nitro-infer-enclave systemd unit runs it so):
# nitro-cli returns once the enclave is launched, so this script watches `nitro-cli describe-enclaves`
# every --poll-seconds and starts the enclave again when it is gone, waiting --backoff-seconds,
# doubled after each quick death up to --max-backoff-seconds (reset once it ran 10 minutes). The
# parent reconnects by itself and reloads the models it had loaded. SIGTERM terminates the enclave.
# Debug mode exposes the enclave's console and zeroes its PCRs in attestations: KMS will (correctly)
# refuse to release any key to it. It is allowed only with --debug-mode, and said loudly.
#
# Usage: run-enclave.sh [--eif build/enclave.eif] [--cpus 2] [--memory-mib N] [--cid 16] [--debug-mode]
#          [--supervise [--poll-seconds 5] [--backoff-seconds 5] [--max-backoff-seconds 300]]
set -euo pipefail

EIF=build/enclave.eif
CPUS=2
MEMORY_MIB=""
CID=16
DEBUG=0
SUPERVISE=0
POLL=5
BACKOFF=5
MAX_BACKOFF=300
NAME=nitro-infer
MIN_MEMORY_MIB=2048
ETC="${NITRO_ENCLAVES_ETC:-/etc/nitro_enclaves}"

while [ $# -gt 0 ]; do
  case "$1" in
    --eif) EIF="$2"; shift 2 ;;
    --cpus) CPUS="$2"; shift 2 ;;
    --memory-mib) MEMORY_MIB="$2"; shift 2 ;;
    --cid) CID="$2"; shift 2 ;;
    --debug-mode) DEBUG=1; shift ;;
    --supervise) SUPERVISE=1; shift ;;
    --poll-seconds) POLL="$2"; shift 2 ;;
    --backoff-seconds) BACKOFF="$2"; shift 2 ;;
    --max-backoff-seconds) MAX_BACKOFF="$2"; shift 2 ;;
    -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
    *) echo "error: unknown option $1" >&2; exit 2 ;;
  esac
done

for tool in nitro-cli systemctl; do
  command -v "$tool" >/dev/null || { echo "error: $tool not found; install aws-nitro-enclaves-cli (docs/deploy.md)" >&2; exit 2; }
done
[ -f "$EIF" ] || { echo "error: $EIF not found; run scripts/build-eif first" >&2; exit 2; }
for value in "$CPUS" "$CID" "$POLL" "$BACKOFF" "$MAX_BACKOFF" ${MEMORY_MIB:+"$MEMORY_MIB"}; do
  case "$value" in ''|*[!0-9]*) echo "error: --cpus, --cid, --memory-mib and the --*-seconds options take whole numbers" >&2; exit 2 ;; esac
done
[ "$CID" -ge 4 ] || { echo "error: CIDs 0-3 are reserved; use 4 or more" >&2; exit 2; }

EIF_MIB=$(( ($(stat -c %s "$EIF") + 1048575) / 1048576 ))
NEEDED=$(( EIF_MIB * 4 ))
[ "$NEEDED" -ge "$MIN_MEMORY_MIB" ] || NEEDED=$MIN_MEMORY_MIB
if [ -z "$MEMORY_MIB" ]; then MEMORY_MIB=$NEEDED; fi
if [ "$MEMORY_MIB" -lt $(( EIF_MIB * 4 )) ]; then
  echo "error: --memory-mib $MEMORY_MIB is less than 4 x the EIF size ($EIF_MIB MiB)" >&2; exit 2
fi

mkdir -p "$ETC"
ALLOCATOR="# Written by nitro-infer scripts/deploy/run-enclave.sh
---
memory_mib: $MEMORY_MIB
cpu_count: $CPUS"
# Restart the allocator only when its reservation changes: under systemd this script runs again
# after every failure, and a restart while nothing changed would only take time.
if [ "$(cat "$ETC/allocator.yaml" 2>/dev/null)" != "$ALLOCATOR" ]; then
  printf '%s\n' "$ALLOCATOR" > "$ETC/allocator.yaml"
  systemctl restart nitro-enclaves-allocator.service
fi

ARGS=(run-enclave --eif-path "$EIF" --cpu-count "$CPUS" --memory "$MEMORY_MIB" --enclave-cid "$CID" --enclave-name "$NAME")
if [ "$DEBUG" = 1 ]; then
  cat >&2 <<'WARN'
##########################################################################################
# WARNING: DEBUG MODE. The enclave's console is readable from the parent and its PCRs are #
# all zero in attestation documents. KMS will refuse to release any key to it, so no      #
# model or cluster key will load: this is correct. Never use debug mode in production.    #
##########################################################################################
WARN
  ARGS+=(--debug-mode)
fi
if [ "$SUPERVISE" = 0 ]; then
  nitro-cli "${ARGS[@]}"
  echo "enclave started: CID $CID, $CPUS CPUs, $MEMORY_MIB MiB; the parent connects to vsock:$CID:5000"
  exit 0
fi

# True while an enclave with our CID is running (describe-enclaves prints a JSON array).
running() {
  nitro-cli describe-enclaves 2>/dev/null | tr -d ' \n\t' | grep -q "\"EnclaveCID\":$CID,.*\"State\":\"RUNNING\"\|\"State\":\"RUNNING\".*\"EnclaveCID\":$CID[,}]"
}
stop() {
  echo "stopping: terminating enclave $NAME"
  nitro-cli terminate-enclave --enclave-name "$NAME" >/dev/null 2>&1 || true
  exit 0
}
trap stop TERM INT
# One left from a previous run of this unit would hold the CID: start from none.
if running; then nitro-cli terminate-enclave --enclave-name "$NAME" >/dev/null 2>&1 || true; fi
delay=$BACKOFF
while true; do
  started=$SECONDS
  if nitro-cli "${ARGS[@]}" >/dev/null; then
    echo "enclave started: CID $CID, $CPUS CPUs, $MEMORY_MIB MiB; the parent connects to vsock:$CID:5000"
    # `sleep & wait` so SIGTERM is handled at once rather than after the sleep.
    while running; do sleep "$POLL" & wait $!; done
    echo "enclave exited after $((SECONDS - started)) s" >&2
  else
    echo "nitro-cli run-enclave failed (status $?)" >&2
  fi
  if [ $((SECONDS - started)) -ge 600 ]; then delay=$BACKOFF; fi
  echo "restarting the enclave in $delay s" >&2
  sleep "$delay" & wait $!
  delay=$((delay * 2)); [ "$delay" -le "$MAX_BACKOFF" ] || delay=$MAX_BACKOFF
done
