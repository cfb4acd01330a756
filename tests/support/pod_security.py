"""The restricted Pod Security Standard as a check: what a Pod admission would refuse.

Shared by the Pod builder's tests and the chart's: both must produce Pods a namespace
labelled `pod-security.kubernetes.io/enforce: restricted` admits.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

Obj = dict[str, Any]


def containers(pod: Obj) -> Iterator[Obj]:
    spec = pod["spec"]
    for key in ("initContainers", "containers", "ephemeralContainers"):
        yield from spec.get(key, [])


# The restricted Pod Security Standard, control by control, from the Kubernetes docs.
RESTRICTED_VOLUME_TYPES = {
    "configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim",
    "projected", "secret",
}  # fmt: skip
SAFE_SYSCTLS = {
    "kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies", "net.ipv4.ping_group_range", "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
}  # fmt: skip
SELINUX_TYPES = {"", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"}


def restricted_violations(pod: Obj) -> list[str]:
    """What the restricted level (which includes baseline) would refuse in this Pod."""
    spec = pod["spec"]
    pod_sc = spec.get("securityContext", {})
    found: list[str] = []
    # baseline
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(key):
            found.append(f"host namespace: {key}")
    if pod_sc.get("windowsOptions", {}).get("hostProcess"):
        found.append("hostProcess")
    for sysctl in pod_sc.get("sysctls", []):
        if sysctl["name"] not in SAFE_SYSCTLS:
            found.append(f"unsafe sysctl {sysctl['name']}")
    for volume in spec.get("volumes", []):
        kinds = set(volume) - {"name"}
        if "hostPath" in kinds:
            found.append(f"hostPath volume {volume['name']}")
        if not kinds <= RESTRICTED_VOLUME_TYPES:
            found.append(f"volume {volume['name']} of type {sorted(kinds)}")
    for key, value in pod.get("metadata", {}).get("annotations", {}).items():
        if key.startswith("container.apparmor.security.beta.kubernetes.io/") and not (
            value == "runtime/default" or value.startswith("localhost/")
        ):
            found.append(f"AppArmor annotation {key}={value}")
    pod_non_root = pod_sc.get("runAsNonRoot") is True
    pod_seccomp = pod_sc.get("seccompProfile", {}).get("type")
    levels = [("pod", pod_sc)] + [
        (c["name"], c.get("securityContext", {})) for c in containers(pod)
    ]
    for level, sc in levels:
        if sc.get("appArmorProfile", {}).get("type", "RuntimeDefault") not in (
            "RuntimeDefault",
            "Localhost",
        ):
            found.append(f"{level}: AppArmor profile")
        selinux = sc.get("seLinuxOptions", {})
        if (
            selinux.get("type", "") not in SELINUX_TYPES
            or selinux.get("user")
            or selinux.get("role")
        ):
            found.append(f"{level}: SELinux options")
        if sc.get("runAsUser") == 0:
            found.append(f"{level}: runAsUser 0")
        if sc.get("seccompProfile", {}).get("type") == "Unconfined":
            found.append(f"{level}: seccomp Unconfined")
    for c in containers(pod):
        sc = c.get("securityContext", {})
        name = c["name"]
        if sc.get("privileged"):
            found.append(f"{name}: privileged")
        if sc.get("windowsOptions", {}).get("hostProcess"):
            found.append(f"{name}: hostProcess")
        if sc.get("procMount", "Default") != "Default":
            found.append(f"{name}: procMount")
        for port in c.get("ports", []):
            if port.get("hostPort"):
                found.append(f"{name}: hostPort {port['hostPort']}")
        # restricted
        if sc.get("allowPrivilegeEscalation") is not False:
            found.append(f"{name}: allowPrivilegeEscalation not false")
        if sc.get("runAsNonRoot") is False or not (pod_non_root or sc.get("runAsNonRoot")):
            found.append(f"{name}: not runAsNonRoot")
        seccomp = sc.get("seccompProfile", {}).get("type") or pod_seccomp
        if seccomp not in ("RuntimeDefault", "Localhost"):
            found.append(f"{name}: seccomp {seccomp}")
        capabilities = sc.get("capabilities", {})
        if "ALL" not in capabilities.get("drop", []):
            found.append(f"{name}: capabilities not dropping ALL")
        for added in capabilities.get("add", []):
            if added != "NET_BIND_SERVICE":
                found.append(f"{name}: adds capability {added}")
    return found
