#!/usr/bin/env bash
# Starts the nitro-infer enclave on this (enclave-enabled) parent instance:
#   1. sizes the Nitro Enclaves allocator: memory ≥ 4 × the EIF size (the EIF is unpacked into
#      enclave memory and onnxruntime needs room for models), CPUs as given;
#   2. restarts the allocator so the reservation takes effect;
#   3. nitro-cli run-enclave with a fixed CID, so the parent's config can name vsock:<cid>:5000.
# Debug mode exposes the enclave's console and zeroes its PCRs in attestations: KMS will (correctly)
# refuse to release any key to it. It is allowed only with --debug-mode, and said loudly.
#
# Usage: run-enclave.sh [--eif build/enclave.eif] [--cpus 2] [--memory-mib N] [--cid 16] [--debug-mode]
set -euo pipefail

EIF=build/enclave.eif
CPUS=2
MEMORY_MIB=""
CID=16
DEBUG=0
MIN_MEMORY_MIB=2048
ETC="${NITRO_ENCLAVES_ETC:-/etc/nitro_enclaves}"

while [ $# -gt 0 ]; do
  case "$1" in
    --eif) EIF="$2"; shift 2 ;;
    --cpus) CPUS="$2"; shift 2 ;;
    --memory-mib) MEMORY_MIB="$2"; shift 2 ;;
    --cid) CID="$2"; shift 2 ;;
    --debug-mode) DEBUG=1; shift ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "error: unknown option $1" >&2; exit 2 ;;
  esac
done

for tool in nitro-cli systemctl; do
  command -v "$tool" >/dev/null || { echo "error: $tool not found; install aws-nitro-enclaves-cli (docs/deploy.md)" >&2; exit 2; }
done
[ -f "$EIF" ] || { echo "error: $EIF not found; run scripts/build-eif first" >&2; exit 2; }
case "$CPUS$CID" in *[!0-9]*) echo "error: --cpus and --cid take numbers" >&2; exit 2 ;; esac
[ "$CID" -ge 4 ] || { echo "error: CIDs 0-3 are reserved; use 4 or more" >&2; exit 2; }

EIF_MIB=$(( ($(stat -c %s "$EIF") + 1048575) / 1048576 ))
NEEDED=$(( EIF_MIB * 4 ))
[ "$NEEDED" -ge "$MIN_MEMORY_MIB" ] || NEEDED=$MIN_MEMORY_MIB
if [ -z "$MEMORY_MIB" ]; then MEMORY_MIB=$NEEDED; fi
if [ "$MEMORY_MIB" -lt $(( EIF_MIB * 4 )) ]; then
  echo "error: --memory-mib $MEMORY_MIB is less than 4 x the EIF size ($EIF_MIB MiB)" >&2; exit 2
fi

mkdir -p "$ETC"
cat > "$ETC/allocator.yaml" <<YAML
# Written by nitro-infer scripts/deploy/run-enclave.sh
---
memory_mib: $MEMORY_MIB
cpu_count: $CPUS
YAML
systemctl restart nitro-enclaves-allocator.service

ARGS=(run-enclave --eif-path "$EIF" --cpu-count "$CPUS" --memory "$MEMORY_MIB" --enclave-cid "$CID")
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
nitro-cli "${ARGS[@]}"
echo "enclave started: CID $CID, $CPUS CPUs, $MEMORY_MIB MiB; the parent connects to vsock:$CID:5000"
