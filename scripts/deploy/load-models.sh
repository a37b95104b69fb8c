#!/usr/bin/env bash
# Loads every model of a models list into this instance's parent, so each replica of the Auto Scaling
# group (a new one included) serves the same models: the ALB sends an admin request to one instance
# only. The nitro-infer-models unit runs it after every start of the parent; after an enclave
# restart the parent reloads by itself. A list line is `<name> <source>` (`#` starts a comment);
# production sources are pinned S3 versions (s3://bucket/key?versionId=…).
# Usage: load-models.sh --list <file | s3://bucket/key> (--token-secret <secret id> | --token-file <file>)
#          [--endpoint http://127.0.0.1:8080] [--install-dir /opt/nitro-infer] [--attempts 60] [--retry-seconds 10]
set -euo pipefail

LIST=""
TOKEN_SECRET=""
TOKEN_FILE=""
ENDPOINT=http://127.0.0.1:8080
INSTALL_DIR=/opt/nitro-infer
ATTEMPTS=60
RETRY=10

while [ $# -gt 0 ]; do
  case "$1" in
    --list) LIST="$2"; shift 2 ;;
    --token-secret) TOKEN_SECRET="$2"; shift 2 ;;
    --token-file) TOKEN_FILE="$2"; shift 2 ;;
    --endpoint) ENDPOINT="$2"; shift 2 ;;
    --install-dir) INSTALL_DIR="$2"; shift 2 ;;
    --attempts) ATTEMPTS="$2"; shift 2 ;;
    --retry-seconds) RETRY="$2"; shift 2 ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) echo "error: unknown option $1" >&2; exit 2 ;;
  esac
done
[ -n "$LIST" ] || { echo "error: --list <file | s3://…> is required" >&2; exit 2; }
[ -n "$TOKEN_SECRET$TOKEN_FILE" ] || { echo "error: --token-secret or --token-file is required" >&2; exit 2; }
for value in "$ATTEMPTS" "$RETRY"; do
  case "$value" in ''|*[!0-9]*) echo "error: --attempts and --retry-seconds take whole numbers" >&2; exit 2 ;; esac
done
NODE="$(command -v node-20 || command -v node || true)"
[ -n "$NODE" ] || { echo "error: node not found" >&2; exit 2; }

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
chmod 700 "$WORK"
if [[ "$LIST" == s3://* ]]; then
  # No list yet is no error: a fleet may start before its first model is sealed.
  if ! aws s3 cp --only-show-errors "$LIST" "$WORK/models.txt"; then
    echo "no models list at $LIST: nothing to load"; exit 0
  fi
else
  cp "$LIST" "$WORK/models.txt"
fi
if [ -n "$TOKEN_SECRET" ]; then
  aws secretsmanager get-secret-value --secret-id "$TOKEN_SECRET" --query SecretString --output text > "$WORK/token"
  TOKEN_FILE="$WORK/token"
fi

loaded=0
while read -r name source rest; do
  case "$name" in ''|'#'*) continue ;; esac
  if [ -z "$source" ] || [ -n "$rest" ]; then echo "error: a list line is <name> <source>: $name" >&2; exit 2; fi
  # The parent answers 503 until its enclave link is up (a fresh instance): retry, bounded.
  for attempt in $(seq 1 "$ATTEMPTS"); do
    if "$NODE" "$INSTALL_DIR/bin/nitro-infer.js" models load "$name" "$source" --endpoint "$ENDPOINT" --token-file "$TOKEN_FILE"; then
      loaded=$((loaded + 1)); break
    fi
    if [ "$attempt" = "$ATTEMPTS" ]; then echo "error: $name not loaded after $ATTEMPTS attempts" >&2; exit 1; fi
    sleep "$RETRY"
  done
done < "$WORK/models.txt"
echo "loaded $loaded model(s) from $LIST"
