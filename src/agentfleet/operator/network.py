"""The NetworkPolicy that confines a run's egress to DNS and its agent's allowedEgress."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any, Final

from ..core.actions import RunRequest
from ..models.agent import AgentConfig
from .metadata import APP_NAME_LABEL, RUN_LABEL, InvalidObjectError, label_value, owner_references
from .pods import run_labels

NETWORK_POLICY_APP: Final = "agentfleet-run-egress"


class EgressNotExpressible(InvalidObjectError):  # noqa: N818
    """An allowedEgress entry that a NetworkPolicy cannot say: it takes CIDRs, not hostnames."""


def _dns_rule() -> dict[str, Any]:
    """Egress to the cluster DNS, as most distributions label it (CoreDNS keeps `kube-dns`)."""
    return {
        "to": [
            {
                "namespaceSelector": {
                    "matchLabels": {"kubernetes.io/metadata.name": "kube-system"}
                },
                "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
            }
        ],
        "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
    }


def egress_cidr(entry: str) -> str:
    """An allowedEgress entry as a CIDR; a single address becomes a /32 (or /128).

    A NetworkPolicy matches IP blocks only, so a hostname cannot be allowed by one: the
    caller resolves it to the provider's published ranges, or uses a CNI with FQDN rules.
    """
    try:
        return str(ipaddress.ip_network(entry.strip(), strict=False))
    except ValueError:
        raise EgressNotExpressible(
            f"allowedEgress entry {entry!r} is not a CIDR: a NetworkPolicy takes IP blocks "
            "(such as 203.0.113.0/24), not hostnames; list the host's address ranges, or use "
            "a CNI with FQDN policies and turn networkIsolation off here"
        ) from None


def build_network_policy(
    run: RunRequest,
    agent: AgentConfig,
    *,
    namespace: str,
    owner: Mapping[str, Any] | None = None,
) -> dict[str, Any] | None:
    """The run's NetworkPolicy when its agent asks for network isolation, else None.

    It selects the run's Pod by the `agentfleet.dev/run` label and allows egress only to the
    cluster DNS and the agent's allowedEgress CIDRs; ingress is left alone (nothing listens
    in a run). Create it before the Pod: a Pod that starts first has open egress until the
    policy lands. Named after the run, like the Pod; `owner` is the AgentTask, as for the Pod.
    """
    isolation = agent.spec.environment_requirements.network_isolation
    if not isolation.enabled:
        return None
    cidrs = [egress_cidr(entry) for entry in isolation.allowed_egress]
    egress = [_dns_rule()]
    if cidrs:
        egress.append({"to": [{"ipBlock": {"cidr": cidr}} for cidr in dict.fromkeys(cidrs)]})
    metadata: dict[str, Any] = {
        "name": run.name,
        "namespace": namespace,
        "labels": {**run_labels(run, agent), APP_NAME_LABEL: NETWORK_POLICY_APP},
    }
    references = owner_references(owner)
    if references:
        metadata["ownerReferences"] = references
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": metadata,
        "spec": {
            "podSelector": {"matchLabels": {RUN_LABEL: label_value(run.name)}},
            "policyTypes": ["Egress"],
            "egress": egress,
        },
    }
