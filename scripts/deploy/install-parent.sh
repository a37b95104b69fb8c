#!/usr/bin/env bash
# Installs the parent side as systemd services on an enclave-enabled instance:
#   - vsock-proxy on port 8000 with an allow-list naming only the region's KMS endpoint (the
#     enclave's only way out; DESIGN.md 4.6);
#   - nitro-infer-enclave: run-enclave.sh --supervise, which starts the enclave again when it dies
#     (with backoff); systemd restarts the supervisor itself if it exits;
#   - nitro-infer-parent running `nitro-infer parent --config /etc/nitro-infer/parent.yaml`;
#   - with --models-list, nitro-infer-models: load-models.sh after every start of the parent, so
#     every replica loads the same models.
# Usage: install-parent.sh --region <region> [--install-dir /opt/nitro-infer] [--enclave-cid 16]
#          [--eif <install-dir>/build/enclave.eif] [--enclave-cpus 2] [--enclave-memory-mib N]
#          [--tokens-secret nitro-infer/admin-tokens] [--cluster-group <auto scaling group> [--cluster-port 8444]]
#          [--models-list <file | s3://…>] [--no-start]
set -euo pipefail

REGION=""
INSTALL_DIR=/opt/nitro-infer
CID=16
START=1
EIF=""
ENCLAVE_CPUS=2
ENCLAVE_MEMORY=""
TOKENS_SECRET=nitro-infer/admin-tokens
CLUSTER_GROUP=""
CLUSTER_PORT=8444
MODELS_LIST=""
ETC="${NITRO_ENCLAVES_ETC:-/etc/nitro_enclaves}"
CONFIG_DIR="${NITRO_INFER_ETC:-/etc/nitro-infer}"
UNITS="${SYSTEMD_DIR:-/etc/systemd/system}"

while [ $# -gt 0 ]; do
  case "$1" in
    --region) REGION="$2"; shift 2 ;;
    --install-dir) INSTALL_DIR="$2"; shift 2 ;;
    --enclave-cid) CID="$2"; shift 2 ;;
    --eif) EIF="$2"; shift 2 ;;
    --enclave-cpus) ENCLAVE_CPUS="$2"; shift 2 ;;
    --enclave-memory-mib) ENCLAVE_MEMORY="$2"; shift 2 ;;
    --tokens-secret) TOKENS_SECRET="$2"; shift 2 ;;
    --cluster-group) CLUSTER_GROUP="$2"; shift 2 ;;
    --cluster-port) CLUSTER_PORT="$2"; shift 2 ;;
    --models-list) MODELS_LIST="$2"; shift 2 ;;
    --no-start) START=0; shift ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    *) echo "error: unknown option $1" >&2; exit 2 ;;
  esac
done
[[ "$REGION" =~ ^[a-z]{2}(-[a-z]+)+-[0-9]$ ]] || { echo "error: --region <aws region> is required" >&2; exit 2; }
command -v systemctl >/dev/null || { echo "error: systemctl not found" >&2; exit 2; }
for value in "$CID" "$ENCLAVE_CPUS" "$CLUSTER_PORT" ${ENCLAVE_MEMORY:+"$ENCLAVE_MEMORY"}; do
  case "$value" in ''|*[!0-9]*) echo "error: --enclave-cid, --enclave-cpus, --enclave-memory-mib and --cluster-port take whole numbers" >&2; exit 2 ;; esac
done
[[ "$TOKENS_SECRET" =~ ^[A-Za-z0-9/_+=.@-]{1,512}$ ]] || { echo "error: --tokens-secret: not a secret name" >&2; exit 2; }
[[ "$CLUSTER_GROUP" =~ ^[A-Za-z0-9._-]{0,255}$ ]] || { echo "error: --cluster-group: not a group name" >&2; exit 2; }
# Amazon Linux 2023's nodejs20 package installs node-20 (node only through alternatives).
NODE="$(command -v node-20 || command -v node || echo /usr/bin/node)"
EIF="${EIF:-$INSTALL_DIR/build/enclave.eif}"
KMS_HOST="kms.$REGION.amazonaws.com"

mkdir -p "$ETC" "$CONFIG_DIR" "$UNITS"
cat > "$ETC/vsock-proxy.yaml" <<YAML
# Written by nitro-infer: the enclave may reach KMS of $REGION and nothing else.
allowlist:
  - {address: $KMS_HOST, port: 443}
YAML
cat > "$UNITS/nitro-infer-kms-proxy.service" <<UNIT
[Unit]
Description=vsock-proxy: nitro-infer enclave to AWS KMS ($REGION)
After=network-online.target nitro-enclaves-allocator.service
Wants=network-online.target
[Service]
ExecStart=/usr/bin/vsock-proxy 8000 $KMS_HOST 443 --config $ETC/vsock-proxy.yaml
Restart=always
DynamicUser=yes
NoNewPrivileges=yes
[Install]
WantedBy=multi-user.target
UNIT
if [ ! -f "$CONFIG_DIR/parent.yaml" ]; then
  cat > "$CONFIG_DIR/parent.yaml" <<YAML
mode: production
http: {host: 0.0.0.0, port: 8080}
enclave: {address: "vsock:$CID:5000"}
admin: {tokensSecretId: $TOKENS_SECRET}
aws: {region: $REGION}
YAML
  if [ -n "$CLUSTER_GROUP" ]; then
    echo "cluster: {listen: {host: 0.0.0.0, port: $CLUSTER_PORT}, autoScalingGroup: $CLUSTER_GROUP}" >> "$CONFIG_DIR/parent.yaml"
  fi
fi
cat > "$UNITS/nitro-infer-enclave.service" <<UNIT
[Unit]
Description=nitro-infer enclave (started again when it exits)
After=nitro-enclaves-allocator.service
# Wants, not Requires: run-enclave.sh restarts the allocator when it resizes it, and Requires would
# restart this unit with it (which would run run-enclave.sh again).
Wants=nitro-enclaves-allocator.service
StartLimitIntervalSec=0
[Service]
ExecStart=$INSTALL_DIR/scripts/deploy/run-enclave.sh --eif $EIF --cpus $ENCLAVE_CPUS --cid $CID${ENCLAVE_MEMORY:+ --memory-mib $ENCLAVE_MEMORY} --supervise
ExecStopPost=-/usr/bin/nitro-cli terminate-enclave --enclave-name nitro-infer
Restart=always
RestartSec=10
TimeoutStopSec=60
[Install]
WantedBy=multi-user.target
UNIT
cat > "$UNITS/nitro-infer-parent.service" <<UNIT
[Unit]
Description=nitro-infer parent (HTTP API and relay to the enclave)
After=network-online.target nitro-infer-kms-proxy.service nitro-infer-enclave.service
Wants=network-online.target nitro-infer-enclave.service
[Service]
ExecStart=$NODE $INSTALL_DIR/bin/nitro-infer.js parent --config $CONFIG_DIR/parent.yaml
WorkingDirectory=$INSTALL_DIR
Restart=always
DynamicUser=yes
NoNewPrivileges=yes
ProtectSystem=strict
ProtectHome=yes
PrivateTmp=yes
[Install]
WantedBy=multi-user.target
UNIT
UNITS_TO_START=(nitro-infer-kms-proxy.service nitro-infer-enclave.service nitro-infer-parent.service)
if [ -n "$MODELS_LIST" ]; then
  cat > "$UNITS/nitro-infer-models.service" <<UNIT
[Unit]
Description=nitro-infer: load the models of $MODELS_LIST into this parent
After=nitro-infer-parent.service
BindsTo=nitro-infer-parent.service
[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=$INSTALL_DIR/scripts/deploy/load-models.sh --list $MODELS_LIST --token-secret $TOKENS_SECRET --install-dir $INSTALL_DIR
PrivateTmp=yes
[Install]
WantedBy=nitro-infer-parent.service
UNIT
  UNITS_TO_START+=(nitro-infer-models.service)
fi
systemctl daemon-reload
if [ "$START" = 1 ]; then
  # --no-block: the models unit is a oneshot that waits for the enclave link; the boot need not.
  systemctl enable --now --no-block "${UNITS_TO_START[@]}"
fi
echo "installed: vsock-proxy → $KMS_HOST:443 on port 8000; enclave $EIF on CID $CID; parent → vsock:$CID:5000"
