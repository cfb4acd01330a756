"""The pure builders of a run's Pod, its NetworkPolicy and the batch's workspace claim.

No API server runs here: each object is checked offline with kubernetes-validate (strict,
so an unknown field fails), and the Pod against the restricted Pod Security Standard as the
Kubernetes documentation states it (concepts/security/pod-security-standards).
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from typing import Any

import kubernetes_validate
import pytest

from agentfleet.core.actions import RunRequest
from agentfleet.core.naming import branch_name, refinement_run_name, run_name, task_name
from agentfleet.models.agent import AgentConfig
from agentfleet.models.batch import TicketBatch
from agentfleet.models.project import Project
from agentfleet.models.run import RunKind
from agentfleet.models.task import AgentTaskSpec
from agentfleet.models.workflow import Stage
from agentfleet.operator.metadata import (
    ATTEMPT_LABEL,
    BATCH_LABEL,
    RUN_LABEL,
    STAGE_LABEL,
    TASK_LABEL,
    InvalidObjectError,
    label_value,
)
from agentfleet.operator.network import EgressNotExpressible, build_network_policy
from agentfleet.operator.pods import (
    HOME_DIR,
    PREPARE_ARGV,
    RUN_SPEC_ANNOTATION,
    RUNNER_ARGV,
    SPEC_PATH,
    PodSettings,
    PodSpecTooLarge,
    build_pod,
)
from agentfleet.operator.workspace import (
    WORKSPACE_MOUNT,
    build_workspace_claim,
    pod_run_spec,
    workspace_claim_name,
)
from agentfleet.runner.spec import RunSpec
from tests.support.pod_security import containers, restricted_violations

Obj = dict[str, Any]
K8S_VERSIONS = ("1.30", kubernetes_validate.latest_version())
NAMESPACE = "agents"
BATCH = "sprint-1"
TICKET = "PROJ-1"
TASK = task_name(BATCH, TICKET)
OWNER = {"apiVersion": "agentfleet.dev/v1alpha1", "kind": "AgentTask", "name": TASK, "uid": "u-1"}
LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")


def make_agent(**spec: Any) -> AgentConfig:
    return AgentConfig.model_validate(
        {
            "metadata": {"name": "dev"},
            "spec": {"agentType": "Development", "baseExecutor": {"type": "claude-code"}, **spec},
        }
    )


def make_project(**repository: Any) -> Project:
    return Project.model_validate(
        {
            "metadata": {"name": "demo"},
            "spec": {"repository": {"url": "https://git.example.com/demo.git", **repository}},
        }
    )


def make_batch() -> TicketBatch:
    return TicketBatch.model_validate(
        {
            "metadata": {"name": BATCH},
            "spec": {
                "projectRef": {"name": "demo"},
                "tickets": [{"id": TICKET, "rawDescription": "do it"}],
            },
        }
    )


def make_run(timeout_seconds: int | None = 1800, **fields: Any) -> RunRequest:
    values: dict[str, Any] = {
        "name": run_name(TASK, "develop", 2),
        "kind": RunKind.STAGE,
        "batch": BATCH,
        "task": TASK,
        "stage": "develop",
        "attempt": 2,
        "agent": "dev",
        "project": "demo",
        "timeout_seconds": timeout_seconds,
        **fields,
    }
    return RunRequest(**values)


def make_spec(run: RunRequest, agent: AgentConfig, title: str = "Add a greeting") -> RunSpec:
    """The spec a driver builds, with local paths that mean nothing in a Pod."""
    return RunSpec(
        name=run.name,
        kind=run.kind,
        batch=run.batch,
        task=run.task,
        stage=run.stage,
        attempt=run.attempt,
        agent_name=run.agent,
        agent=agent.spec,
        task_spec=AgentTaskSpec(title=title, description="Say hello."),
        stage_spec=Stage(name="develop", agent_type="Development"),
        worktree="/home/me/.agentfleet/worktrees/x",
        context_dir="/home/me/.agentfleet/runs/x/context",
        branch=branch_name(BATCH, TASK),
        timeout_seconds=run.timeout_seconds,
        memory_limit_bytes=512 * 1024 * 1024,
    )


def pod_for(
    agent: AgentConfig | None = None,
    run: RunRequest | None = None,
    project: Project | None = None,
    title: str = "Add a greeting",
    **options: Any,
) -> Obj:
    agent = agent or make_agent()
    run = run or make_run()
    return build_pod(
        run,
        make_spec(run, agent, title),
        agent,
        project or make_project(),
        make_batch(),
        namespace=NAMESPACE,
        **options,
    )


FULL_AGENT = {
    "baseExecutor": {
        "type": "claude-code",
        "image": "ghcr.io/example/claude:1",
        "env": {"CLAUDE_CODE_MAX_OUTPUT_TOKENS": "8000", "LOG.LEVEL": "debug"},
    },
    "credentialsSecretRef": {"name": "anthropic-key"},
    "environmentRequirements": {
        "networkIsolation": {"enabled": True, "allowedEgress": ["203.0.113.0/24"]},
        "resourceLimits": {"memoryMb": 2048, "cpuCores": 1.5, "diskMb": 10240},
    },
}


def full_pod() -> Obj:
    """Every optional part present: limits, credentials, an owner, a deadline, env."""
    return pod_for(
        make_agent(**FULL_AGENT),
        project=make_project(credentialsSecretRef={"name": "git-token"}),
        owner=OWNER,
    )


def container(pod: Obj, name: str) -> Obj:
    return next(c for c in containers(pod) if c["name"] == name)


def strings(node: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """Every string in a manifest, keys included, with where it is."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield f"{path}.{key}", key
            yield from strings(value, f"{path}.{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from strings(value, f"{path}[{index}]")
    elif isinstance(node, str):
        yield path, node


# --- validity ---------------------------------------------------------------------------


@pytest.mark.parametrize("k8s_version", K8S_VERSIONS)
@pytest.mark.parametrize("build", [pod_for, full_pod], ids=["minimal", "full"])
def test_pod_is_a_valid_v1_pod(build: Any, k8s_version: str) -> None:
    kubernetes_validate.validate(build(), k8s_version, strict=True)


@pytest.mark.parametrize("k8s_version", K8S_VERSIONS)
def test_network_policy_is_a_valid_networking_v1_object(k8s_version: str) -> None:
    policy = build_network_policy(
        make_run(), make_agent(**FULL_AGENT), namespace=NAMESPACE, owner=OWNER
    )
    assert policy is not None
    kubernetes_validate.validate(policy, k8s_version, strict=True)


@pytest.mark.parametrize("k8s_version", K8S_VERSIONS)
@pytest.mark.parametrize("storage_class", [None, "fast-rwx"])
def test_workspace_claim_is_a_valid_v1_claim(storage_class: str | None, k8s_version: str) -> None:
    claim = build_workspace_claim(
        BATCH,
        namespace=NAMESPACE,
        storage_class=storage_class,
        size="20Gi",
        access_mode="ReadWriteMany",
        owner={**OWNER, "kind": "TicketBatch", "name": BATCH},
    )
    kubernetes_validate.validate(claim, k8s_version, strict=True)


@pytest.mark.parametrize("build", [pod_for, full_pod], ids=["minimal", "full"])
def test_pod_passes_the_restricted_pod_security_standard(build: Any) -> None:
    assert restricted_violations(build()) == []


def _set(path: str, value: Any) -> Any:
    def mutate(pod: Obj) -> None:
        *parents, last = path.split(".")
        node = pod
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node.setdefault(key, {})
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value

    return mutate


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (_set("spec.hostNetwork", True), "host namespace: hostNetwork"),
        (_set("spec.hostPID", True), "host namespace: hostPID"),
        (_set("spec.volumes.0", {"name": "host", "hostPath": {"path": "/"}}), "hostPath"),
        (_set("spec.volumes.0", {"name": "nfs", "nfs": {"server": "x", "path": "/"}}), "type"),
        (_set("spec.containers.0.securityContext.privileged", True), "runner: privileged"),
        (
            _set("spec.containers.0.securityContext.allowPrivilegeEscalation", True),
            "runner: allowPrivilegeEscalation",
        ),
        (
            _set("spec.initContainers.0.securityContext.runAsNonRoot", False),
            "prepare-worktree: not runAsNonRoot",
        ),
        (_set("spec.containers.0.securityContext.runAsUser", 0), "runner: runAsUser 0"),
        (
            _set("spec.containers.0.securityContext.capabilities", {"add": ["SYS_ADMIN"]}),
            "runner: adds capability SYS_ADMIN",
        ),
        (
            _set("spec.containers.0.securityContext.capabilities", {"drop": ["NET_RAW"]}),
            "runner: capabilities not dropping ALL",
        ),
        (
            _set("spec.containers.0.securityContext.seccompProfile", {"type": "Unconfined"}),
            "runner: seccomp Unconfined",
        ),
        (_set("spec.securityContext.seccompProfile", {"type": "Unconfined"}), "pod: seccomp"),
        (
            _set("spec.containers.0.ports", [{"containerPort": 80, "hostPort": 80}]),
            "runner: hostPort 80",
        ),
        (_set("spec.securityContext.sysctls", [{"name": "kernel.msgmax", "value": "1"}]), "sysctl"),
    ],
    ids=[
        "hostNetwork",
        "hostPID",
        "hostPath",
        "nfs-volume",
        "privileged",
        "escalation",
        "root-init",
        "uid-0",
        "cap-add",
        "cap-keep",
        "seccomp-container",
        "seccomp-pod",
        "hostPort",
        "sysctl",
    ],
)
def test_restricted_check_catches_what_the_standard_forbids(mutate: Any, expected: str) -> None:
    """The check above is only worth something if it fails where the standard does."""
    pod = copy.deepcopy(pod_for())
    mutate(pod)
    assert any(expected in violation for violation in restricted_violations(pod))


# --- identity -------------------------------------------------------------------------


def test_same_input_builds_an_identical_pod() -> None:
    assert full_pod() == full_pod()
    assert json.dumps(full_pod(), sort_keys=True) == json.dumps(full_pod(), sort_keys=True)


def test_pod_is_named_after_the_run_and_labelled_with_its_place() -> None:
    run = make_run()
    pod = pod_for(run=run)
    assert pod["metadata"]["name"] == run.name
    assert pod["metadata"]["namespace"] == NAMESPACE
    labels = pod["metadata"]["labels"]
    assert labels == {
        "app.kubernetes.io/managed-by": "agentfleet",
        "app.kubernetes.io/name": "agentfleet-runner",
        RUN_LABEL: run.name,
        BATCH_LABEL: BATCH,
        TASK_LABEL: TASK,
        STAGE_LABEL: "develop",
        ATTEMPT_LABEL: "2",
        "agentfleet.dev/agent": "dev",
        "agentfleet.dev/agent-type": "Development",
    }


@pytest.mark.parametrize(
    "text",
    ["ok-name", "a" * 64, "Ünïcode tïtle", "-leading", "trailing.", "$(rm -rf /)", "", "x/y"],
)
def test_label_values_are_valid_whatever_the_text(text: str) -> None:
    value = label_value(text)
    assert len(value) <= 63
    assert LABEL_VALUE.fullmatch(value)
    assert label_value(text) == value


def test_label_values_keep_valid_text_and_separate_texts_that_clean_alike() -> None:
    assert label_value("sprint-1.T_2") == "sprint-1.T_2"
    assert label_value("a b") != label_value("a/b")
    assert label_value("a" * 64) != label_value("a" * 65)


def test_run_without_a_task_has_no_task_label() -> None:
    run = make_run(
        name=refinement_run_name(BATCH, 1), kind=RunKind.REFINEMENT, task=None, stage="refine"
    )
    labels = pod_for(run=run)["metadata"]["labels"]
    assert TASK_LABEL not in labels
    assert labels[STAGE_LABEL] == "refine"


def test_owner_makes_the_task_the_pods_controller() -> None:
    references = full_pod()["metadata"]["ownerReferences"]
    assert references == [{**OWNER, "controller": True, "blockOwnerDeletion": True}]
    assert "ownerReferences" not in pod_for()["metadata"]


def test_owner_without_a_uid_is_refused() -> None:
    with pytest.raises(InvalidObjectError, match="uid"):
        pod_for(owner={k: v for k, v in OWNER.items() if k != "uid"})


def test_spec_of_another_run_is_refused() -> None:
    agent = make_agent()
    run = make_run()
    with pytest.raises(InvalidObjectError, match="spec is for run"):
        build_pod(
            run,
            make_spec(make_run(name="other-1"), agent),
            agent,
            make_project(),
            make_batch(),
            namespace=NAMESPACE,
        )


# --- resources and limits ---------------------------------------------------------------


def test_resource_limits_become_equal_requests_and_limits() -> None:
    pod = full_pod()
    expected = {"cpu": "1500m", "memory": "2048Mi", "ephemeral-storage": "10240Mi"}
    for c in containers(pod):
        assert c["resources"] == {"limits": expected, "requests": expected}, c["name"]


def test_request_ratio_lowers_requests_only() -> None:
    agent = make_agent(
        environmentRequirements={"resourceLimits": {"memoryMb": 1000, "cpuCores": 0.5}}
    )
    resources = container(pod_for(agent, settings=PodSettings(request_ratio=0.5)), "runner")[
        "resources"
    ]
    assert resources == {
        "limits": {"cpu": "500m", "memory": "1000Mi"},
        "requests": {"cpu": "250m", "memory": "500Mi"},
    }


def test_tiny_cpu_limit_rounds_up_to_one_millicore() -> None:
    agent = make_agent(environmentRequirements={"resourceLimits": {"cpuCores": 0.0001}})
    assert container(pod_for(agent), "runner")["resources"]["limits"] == {"cpu": "1m"}


def test_agent_without_limits_gets_no_resources_stanza() -> None:
    assert all("resources" not in c for c in containers(pod_for()))


def test_stage_timeout_becomes_the_active_deadline() -> None:
    assert pod_for(run=make_run(timeout_seconds=900))["spec"]["activeDeadlineSeconds"] == 900
    assert "activeDeadlineSeconds" not in pod_for(run=make_run(timeout_seconds=None))["spec"]


def test_pod_runs_once_without_a_service_account_token_or_service_links() -> None:
    spec = pod_for()["spec"]
    assert spec["restartPolicy"] == "Never"
    assert spec["automountServiceAccountToken"] is False
    assert spec["enableServiceLinks"] is False
    assert spec["securityContext"]["runAsUser"] == 1000
    assert spec["securityContext"]["fsGroup"] == 1000


def test_root_user_in_settings_is_refused() -> None:
    with pytest.raises(InvalidObjectError, match="root"):
        PodSettings(run_as_user=0)


# --- containers -------------------------------------------------------------------------


def test_runner_argv_and_result_path_are_fixed() -> None:
    pod = full_pod()
    runner = container(pod, "runner")
    assert runner["command"] == list(RUNNER_ARGV)
    assert runner["command"][-2:] == ["--result", "/dev/termination-log"]
    assert runner["terminationMessagePath"] == "/dev/termination-log"
    assert runner["terminationMessagePolicy"] == "File"
    assert "args" not in runner
    assert container(pod, "prepare-worktree")["command"] == list(PREPARE_ARGV)


def test_init_container_prepares_the_worktree_before_the_runner() -> None:
    pod = full_pod()
    [prepare] = pod["spec"]["initContainers"]
    assert prepare["name"] == "prepare-worktree"
    env = {e["name"]: e["value"] for e in prepare["env"]}
    assert env["AGENTFLEET_REPOSITORY_URL"] == "https://git.example.com/demo.git"
    assert env["AGENTFLEET_BASE_BRANCH"] == "main"


@pytest.mark.parametrize(
    ("agent_image", "image", "settings", "runner_image", "init_image"),
    [
        ("agent:1", "arg:1", PodSettings(runner_image="set:1"), "agent:1", "arg:1"),
        (None, "arg:1", PodSettings(runner_image="set:1"), "arg:1", "arg:1"),
        (None, None, PodSettings(runner_image="set:1"), "set:1", "set:1"),
    ],
    ids=["agent-image", "image-argument", "settings"],
)
def test_runner_image_comes_from_the_agent_then_the_argument_then_settings(
    agent_image: str | None,
    image: str | None,
    settings: PodSettings,
    runner_image: str,
    init_image: str,
) -> None:
    executor = {"type": "claude-code", **({"image": agent_image} if agent_image else {})}
    pod = pod_for(make_agent(baseExecutor=executor), image=image, settings=settings)
    assert container(pod, "runner")["image"] == runner_image
    assert container(pod, "prepare-worktree")["image"] == init_image


def test_agent_credentials_reach_the_runner_as_secret_env() -> None:
    pod = full_pod()
    assert container(pod, "runner")["envFrom"] == [{"secretRef": {"name": "anthropic-key"}}]
    assert container(pod, "prepare-worktree")["envFrom"] == [{"secretRef": {"name": "git-token"}}]
    assert all("envFrom" not in c for c in containers(pod_for()))


def test_agent_env_passes_as_given_after_home() -> None:
    env = container(full_pod(), "runner")["env"]
    assert env == [
        {"name": "HOME", "value": HOME_DIR},
        {"name": "CLAUDE_CODE_MAX_OUTPUT_TOKENS", "value": "8000"},
        {"name": "LOG.LEVEL", "value": "debug"},
    ]


@pytest.mark.parametrize(("name", "match"), [("1BAD", "not valid"), ("HOME", "set by agentfleet")])
def test_agent_env_the_pod_cannot_take_is_refused(name: str, match: str) -> None:
    agent = make_agent(baseExecutor={"type": "claude-code", "env": {name: "x"}})
    with pytest.raises(InvalidObjectError, match=match):
        pod_for(agent)


def test_root_filesystem_is_read_only_with_writable_home_and_tmp() -> None:
    pod = pod_for()
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    for c in containers(pod):
        assert c["securityContext"]["readOnlyRootFilesystem"] is True
        mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
        assert volumes[mounts[HOME_DIR]] == {"name": mounts[HOME_DIR], "emptyDir": {}}
        assert volumes[mounts["/tmp"]] == {"name": mounts["/tmp"], "emptyDir": {}}
    assert {"name": "HOME", "value": HOME_DIR} in container(pod, "runner")["env"]


# --- the run spec in the Pod ------------------------------------------------------------


def test_spec_reaches_the_containers_as_a_file_from_the_annotation() -> None:
    pod = pod_for()
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    spec_dir, spec_file = SPEC_PATH.rsplit("/", 1)
    for c in containers(pod):
        [mount] = [m for m in c["volumeMounts"] if m["mountPath"] == spec_dir]
        assert mount["readOnly"] is True
        [item] = volumes[mount["name"]]["downwardAPI"]["items"]
        assert item == {
            "path": spec_file,
            "fieldRef": {"fieldPath": f"metadata.annotations['{RUN_SPEC_ANNOTATION}']"},
        }


def test_spec_paths_point_into_the_workspace_volume() -> None:
    pod = pod_for()
    spec = RunSpec.model_validate_json(pod["metadata"]["annotations"][RUN_SPEC_ANNOTATION])
    assert spec.worktree == f"/workspace/worktrees/{TASK}"
    assert spec.context_dir.startswith("/workspace/contexts/")
    assert not spec.context_dir.startswith(spec.worktree + "/")
    assert spec.memory_limit_bytes is None  # the Pod's limit bounds the run
    assert spec.branch == branch_name(BATCH, TASK)
    assert container(pod, "runner")["workingDir"] == spec.worktree
    [workspace] = [v for v in pod["spec"]["volumes"] if "persistentVolumeClaim" in v]
    assert workspace["persistentVolumeClaim"] == {"claimName": workspace_claim_name(BATCH)}
    for c in containers(pod):
        assert {"name": workspace["name"], "mountPath": WORKSPACE_MOUNT} in c["volumeMounts"]


def test_pod_run_spec_is_idempotent_and_keeps_everything_else() -> None:
    run = make_run()
    agent = make_agent()
    spec = make_spec(run, agent)
    once = pod_run_spec(spec)
    assert pod_run_spec(once) == once
    unchanged = {"worktree", "context_dir", "memory_limit_bytes"}
    assert once.model_dump(exclude=unchanged) == spec.model_dump(exclude=unchanged)


def test_refinement_run_works_in_its_own_folder() -> None:
    run = make_run(
        name=refinement_run_name(BATCH, 1), kind=RunKind.REFINEMENT, task=None, stage="refine"
    )
    agent = make_agent()
    spec = make_spec(run, agent).model_copy(update={"task_spec": None, "branch": None})
    in_pod = pod_run_spec(spec)
    assert in_pod.worktree == f"/workspace/runs/{run.name}"
    assert in_pod.context_dir == f"/workspace/contexts/{run.name}"


def test_ticket_text_stays_inside_the_spec_annotation() -> None:
    title = "Fix \"quotes\" 'and'\nnewlines $(touch /tmp/pwned) `id` ${HOME}; marker-9q7z"
    pod = pod_for(title=title)
    annotation = pod["metadata"]["annotations"][RUN_SPEC_ANNOTATION]
    task_spec = RunSpec.model_validate_json(annotation).task_spec
    assert task_spec is not None
    assert task_spec.title == title
    elsewhere = [
        (path, text)
        for path, text in strings(pod)
        if path != f".metadata.annotations.{RUN_SPEC_ANNOTATION}"
    ]
    assert [p for p, text in elsewhere if "marker-9q7z" in text or "$(" in text] == []
    for c in containers(pod):
        assert c["command"] in (list(RUNNER_ARGV), list(PREPARE_ARGV))


def test_spec_too_large_for_the_annotations_is_refused() -> None:
    with pytest.raises(PodSpecTooLarge, match="over the API's limit"):
        pod_for(title="x" * (256 * 1024))
    pod_for(title="x" * (200 * 1024))  # large, but it fits


# --- NetworkPolicy ----------------------------------------------------------------------


def isolated_agent(*allowed: str) -> AgentConfig:
    return make_agent(
        environmentRequirements={
            "networkIsolation": {"enabled": True, "allowedEgress": list(allowed)}
        }
    )


def test_agent_without_isolation_gets_no_network_policy() -> None:
    assert build_network_policy(make_run(), make_agent(), namespace=NAMESPACE) is None


def test_network_policy_allows_only_dns_and_the_listed_cidrs() -> None:
    policy = build_network_policy(
        make_run(), isolated_agent("203.0.113.0/24", "2001:db8::/32"), namespace=NAMESPACE
    )
    assert policy is not None
    spec = policy["spec"]
    assert spec["policyTypes"] == ["Egress"]
    dns, listed = spec["egress"]
    assert dns["to"] == [
        {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
            "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
        }
    ]
    assert dns["ports"] == [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]
    assert listed == {
        "to": [{"ipBlock": {"cidr": "203.0.113.0/24"}}, {"ipBlock": {"cidr": "2001:db8::/32"}}]
    }


def test_network_policy_selects_exactly_the_runs_pod() -> None:
    run = make_run()
    policy = build_network_policy(run, isolated_agent(), namespace=NAMESPACE)
    assert policy is not None
    selector = policy["spec"]["podSelector"]["matchLabels"]
    assert selector == {RUN_LABEL: run.name}
    assert selector.items() <= pod_for(run=run)["metadata"]["labels"].items()
    assert [rule["to"][0].get("ipBlock") for rule in policy["spec"]["egress"]] == [None]


def test_single_address_egress_becomes_a_host_cidr() -> None:
    policy = build_network_policy(make_run(), isolated_agent("198.51.100.7"), namespace=NAMESPACE)
    assert policy is not None
    assert policy["spec"]["egress"][1]["to"] == [{"ipBlock": {"cidr": "198.51.100.7/32"}}]


@pytest.mark.parametrize("entry", ["api.anthropic.com", "github.com:443", "10.0.0.0/33"])
def test_egress_a_network_policy_cannot_express_is_refused_by_name(entry: str) -> None:
    with pytest.raises(EgressNotExpressible, match=re.escape(repr(entry))) as caught:
        build_network_policy(make_run(), isolated_agent(entry), namespace=NAMESPACE)
    assert "CIDR" in str(caught.value)
    assert isinstance(caught.value, ValueError)


# --- workspace claim --------------------------------------------------------------------


def test_workspace_claim_is_named_for_its_batch_and_owned_by_it() -> None:
    owner = {**OWNER, "kind": "TicketBatch", "name": BATCH}
    claim = build_workspace_claim(
        BATCH,
        namespace=NAMESPACE,
        storage_class=None,
        size="10Gi",
        access_mode="ReadWriteOnce",
        owner=owner,
    )
    assert claim["metadata"]["name"] == workspace_claim_name(BATCH) == f"{BATCH}-workspace"
    assert claim["metadata"]["labels"][BATCH_LABEL] == BATCH
    assert claim["metadata"]["ownerReferences"][0]["uid"] == "u-1"
    assert claim["spec"] == {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": "10Gi"}},
    }


def test_retained_workspace_claim_has_no_owner() -> None:
    claim = build_workspace_claim(
        BATCH,
        namespace=NAMESPACE,
        storage_class="standard",
        size="1Gi",
        access_mode="ReadWriteOnce",
        owner=None,
    )
    assert "ownerReferences" not in claim["metadata"]
    assert claim["spec"]["storageClassName"] == "standard"


def test_long_batch_name_gives_a_short_distinct_claim_name() -> None:
    long_a, long_b = "b" * 60 + "-a", "b" * 60 + "-b"
    name_a, name_b = workspace_claim_name(long_a), workspace_claim_name(long_b)
    assert len(name_a) <= 63
    assert name_a.endswith("-workspace")
    assert name_a != name_b
    assert workspace_claim_name(long_a) == name_a


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [("access_mode", "ReadOnlyMany", "access mode"), ("size", "ten gigs", "quantity")],
)
def test_workspace_claim_the_api_would_refuse_is_refused_here(
    field: str, value: str, match: str
) -> None:
    options: dict[str, Any] = {"size": "1Gi", "access_mode": "ReadWriteOnce", field: value}
    with pytest.raises(InvalidObjectError, match=match):
        build_workspace_claim(BATCH, namespace=NAMESPACE, storage_class=None, owner=None, **options)
