# What the VM tests boot. Sourced by prepare.sh and read by the test helpers.
# Node: the version of the image's runtime (Dockerfile.enclave's distroless nodejs20). Keep equal to
# `docker run --rm --entrypoint /nodejs/bin/node <RUNTIME_IMAGE> --version` when the digest changes.
NODE_VERSION=20.20.2
# Modules the guest loads, in order: the NSM driver, then vsock and its loopback transport, then
# virtio-net (with the failover modules it depends on) for QEMU's user-mode network.
KERNEL_MODULES="nsm vsock vmw_vsock_virtio_transport_common vsock_loopback failover net_failover virtio_net"
