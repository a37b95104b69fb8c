#!/usr/bin/env bash
# Installs the parent side as systemd services on an enclave-enabled instance:
#   - vsock-proxy on port 8000 with an allow-list naming only the region's KMS endpoint (the
#     enclave's only way out; DESIGN.md 4.6);
#   - nitro-infer-parent running `nitro-infer parent --config /etc/nitro-infer/parent.yaml`.
# Usage: install-parent.sh --region <region> [--install-dir /opt/nitro-infer] [--enclave-cid 16] [--no-start]
set -euo pipefail

REGION=""
INSTALL_DIR=/opt/nitro-infer
CID=16
START=1
ETC="${NITRO_ENCLAVES_ETC:-/etc/nitro_enclaves}"
CONFIG_DIR="${NITRO_INFER_ETC:-/etc/nitro-infer}"
UNITS="${SYSTEMD_DIR:-/etc/systemd/system}"

while [ $# -gt 0 ]; do
  case "$1" in
    --region) REGION="$2"; shift 2 ;;
    --install-dir) INSTALL_DIR="$2"; shift 2 ;;
    --enclave-cid) CID="$2"; shift 2 ;;
    --no-start) START=0; shift ;;
    -h|--help) sed -n '2,7p' "$0"; exit 0 ;;
    *) echo "error: unknown option $1" >&2; exit 2 ;;
  esac
done
[[ "$REGION" =~ ^[a-z]{2}(-[a-z]+)+-[0-9]$ ]] || { echo "error: --region <aws region> is required" >&2; exit 2; }
command -v systemctl >/dev/null || { echo "error: systemctl not found" >&2; exit 2; }
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
admin: {tokensSecretId: nitro-infer/admin-tokens}
aws: {region: $REGION}
YAML
fi
cat > "$UNITS/nitro-infer-parent.service" <<UNIT
[Unit]
Description=nitro-infer parent (HTTP API and relay to the enclave)
After=network-online.target nitro-infer-kms-proxy.service
Wants=network-online.target
[Service]
ExecStart=/usr/bin/node $INSTALL_DIR/bin/nitro-infer.js parent --config $CONFIG_DIR/parent.yaml
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
systemctl daemon-reload
if [ "$START" = 1 ]; then
  systemctl enable --now nitro-infer-kms-proxy.service nitro-infer-parent.service
fi
echo "installed: vsock-proxy → $KMS_HOST:443 on port 8000; parent → vsock:$CID:5000"
