"""The `agentfleet` command line."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from .agents.cli import agents_app
from .commandline import (
    EXIT_BAD_INPUT,
    RepoOption,
    StateDirOption,
    console,
    err_console,
    print_error,
)
from .commandline import fail as _fail
from .commandline import workspace as _workspace
from .models import KINDS
from .models.loader import LoadedResource, ManifestError

if TYPE_CHECKING:
    from .local.workspace import Workspace

app = typer.Typer(
    name="agentfleet",
    help="Run fleets of AI coding agents: locally in git worktrees, or as a Kubernetes operator.",
    no_args_is_help=True,
    add_completion=False,
)
app.add_typer(agents_app, name="agents")


@app.command()
def crds(
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Folder to write the CRD manifests to.")
    ] = Path("crds"),
) -> None:
    """Write the CustomResourceDefinitions, generated from the models, to OUTPUT."""
    from .crd import write_crds

    for path in write_crds(output):
        console.print(f"wrote {path}")


@app.command()
def simulate(
    files: Annotated[
        list[Path], typer.Option("--file", "-f", help="Manifest file or folder (repeatable).")
    ],
    seed: Annotated[int, typer.Option(help="Seed of the random run durations.")] = 0,
) -> None:
    """Schedule the batches in FILES in virtual time with the real engine; no agent runs.

    Exit 0 when every batch succeeds, 1 when one does not, 2 on bad input.
    """
    from .simulate import render_simulation, simulate_manifests

    try:
        reports = simulate_manifests(files, seed=seed)
    except ManifestError as exc:
        for issue in exc.issues:
            print_error(issue)
        raise typer.Exit(EXIT_BAD_INPUT) from exc
    render_simulation(console, reports)
    if any(r.phase != "Succeeded" for r in reports):
        raise typer.Exit(1)


OutputOption = Annotated[
    str | None, typer.Option("--output", "-o", help="yaml or json instead of a table.")
]
KindArgument = Annotated[str, typer.Argument(help="projects|agents|workflows|batches|tasks")]
FilesOption = Annotated[
    list[Path], typer.Option("--file", "-f", help="Manifest file or folder (repeatable).")
]


def _need_store(ws: Workspace, kind: str, name: str) -> None:
    """Nothing was ever applied here: whatever the user names, it is not found."""
    if not ws.has_store:
        raise _fail(f"{kind} {name!r} not found (no store in {ws.state_dir})")


def _kind(word: str) -> str:
    from .local.views import KIND_CHOICES, resolve_kind

    kind = resolve_kind(word)
    if kind is None:
        raise _fail(f"unknown kind {word!r}; expected one of {KIND_CHOICES}", EXIT_BAD_INPUT)
    return kind


def _load_checked(files: list[Path], ws: Workspace) -> list[LoadedResource]:
    """Manifests parsed and their references checked, before anything is written."""
    from .local.preflight import check_references
    from .models.loader import load_manifests

    try:
        loaded = load_manifests(files)
        stored: list[Any] = []
        if ws.has_store:
            with ws.open_store() as store:
                for kind in KINDS:
                    stored.extend(store.list(kind))
        check_references(loaded, stored, ws.repo)
    except ManifestError as exc:
        for issue in exc.issues:
            print_error(issue)
        raise typer.Exit(EXIT_BAD_INPUT) from exc
    return loaded


@app.command()
def apply(files: FilesOption, repo: RepoOption = None, state_dir: StateDirOption = None) -> None:
    """Create or update the resources in FILES in the local store (status is kept)."""
    from datetime import UTC, datetime

    ws = _workspace(repo, state_dir)
    loaded = _load_checked(files, ws)
    with ws.open_store() as store:
        for line in store.apply([item.resource for item in loaded], datetime.now(UTC)):
            console.print(line)


@app.command()
def delete(
    kind: KindArgument,
    name: str,
    repo: RepoOption = None,
    state_dir: StateDirOption = None,
) -> None:
    """Delete one resource; a batch takes its tasks with it. Branches are kept."""
    resolved = _kind(kind)
    ws = _workspace(repo, state_dir)
    _need_store(ws, resolved, name)
    with ws.open_store() as store:
        deleted = store.delete(resolved, name)
    if not deleted:
        raise _fail(f"{resolved} {name!r} not found")
    for line in deleted:
        console.print(f"{line} deleted")


@app.command()
def get(
    kind: KindArgument,
    name: Annotated[str | None, typer.Argument()] = None,
    output: OutputOption = None,
    repo: RepoOption = None,
    state_dir: StateDirOption = None,
) -> None:
    """List resources of KIND (or one, by NAME)."""
    from .local.views import dump, get_table

    resolved = _kind(kind)
    if output not in (None, "yaml", "json"):
        raise _fail(f"--output: expected yaml or json, got {output!r}", EXIT_BAD_INPUT)
    ws = _workspace(repo, state_dir)
    objects: list[Any] = []
    active: dict[str, int] = {}
    if ws.has_store:
        with ws.open_store() as store:
            objects = store.list(resolved)
            for run in store.runs():
                if not run.phase.finished:
                    active[run.agent] = active.get(run.agent, 0) + 1
    if name is not None:
        objects = [o for o in objects if o.name == name]
        if not objects:
            raise _fail(f"{resolved} {name!r} not found")
    if output is not None:
        # Not through rich: it would wrap long lines and break the JSON or YAML.
        text = dump(objects, output, single=name is not None)
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
        return
    if not objects:
        err_console.print("No resources found.")
        return
    console.print(get_table(resolved, objects, active))


@app.command()
def describe(
    kind: KindArgument,
    name: str,
    repo: RepoOption = None,
    state_dir: StateDirOption = None,
) -> None:
    """Status, conditions, attempts and events of one resource."""
    from .local.views import describe as render

    resolved = _kind(kind)
    ws = _workspace(repo, state_dir)
    _need_store(ws, resolved, name)
    with ws.open_store() as store:
        obj = store.get(resolved, name)
        if obj is None:
            raise _fail(f"{resolved} {name!r} not found")
        events = store.events(resolved, name)
        runs = store.runs()
    console.print(render(obj, events, runs))


def _annotate(kind: str, name: str, key: str, value: str, ws: Workspace) -> None:
    _need_store(ws, kind, name)
    with ws.open_store() as store:
        obj = store.get(kind, name)
        if obj is None:
            raise _fail(f"{kind} {name!r} not found")
        store.set_annotation(kind, name, key, value)


@app.command()
def approve(
    task: str,
    stage: Annotated[str, typer.Option("--stage", "-s", help="The stage to approve.")],
    by: Annotated[str | None, typer.Option("--by", help="Who approves (default: $USER).")] = None,
    repo: RepoOption = None,
    state_dir: StateDirOption = None,
) -> None:
    """Approve STAGE of TASK (an approval gate); each approver counts once."""
    import getpass

    from .models.task import APPROVE_ANNOTATION_PREFIX

    ws = _workspace(repo, state_dir)
    approver = (by or getpass.getuser() or "someone").replace(",", " ").strip()
    _need_store(ws, "AgentTask", task)
    with ws.open_store() as store:
        obj = store.get("AgentTask", task)
        if obj is None:
            raise _fail(f"AgentTask {task!r} not found")
        if obj.status is not None and obj.status.stages and obj.status.stage(stage) is None:
            names = ", ".join(s.name for s in obj.status.stages)
            raise _fail(f"--stage: task {task!r} has no stage {stage!r} (stages: {names})", 2)

        def add_approver(current: str | None) -> str:
            names = {n.strip() for n in (current or "").split(",") if n.strip()}
            return ",".join(sorted(names | {approver}))

        store.set_annotation(
            "AgentTask", task, APPROVE_ANNOTATION_PREFIX + stage, None, merge=add_approver
        )
    console.print(f"AgentTask/{task}: stage {stage} approved by {approver}")


def _human_action(kind: str, name: str, action: str, ws: Workspace) -> None:
    from .models.task import ACTION_ANNOTATION

    _annotate(kind, name, ACTION_ANNOTATION, action, ws)
    console.print(f"{kind}/{name}: {action} requested")


@app.command()
def retry(task: str, repo: RepoOption = None, state_dir: StateDirOption = None) -> None:
    """Run TASK's failed or escalated stage again, with a fresh retry budget."""
    _human_action("AgentTask", task, "retry", _workspace(repo, state_dir))


@app.command()
def skip(task: str, repo: RepoOption = None, state_dir: StateDirOption = None) -> None:
    """Give up on TASK and let its dependents go on without it."""
    _human_action("AgentTask", task, "skip", _workspace(repo, state_dir))


@app.command()
def abort(batch: str, repo: RepoOption = None, state_dir: StateDirOption = None) -> None:
    """Stop BATCH: cancel its runs and abort every unfinished task."""
    _human_action("TicketBatch", batch, "abort", _workspace(repo, state_dir))


@app.command()
def logs(
    task: str,
    stage: Annotated[str | None, typer.Option("--stage", "-s")] = None,
    attempt: Annotated[int | None, typer.Option("--attempt", "-a")] = None,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Wait for more.")] = False,
    repo: RepoOption = None,
    state_dir: StateDirOption = None,
) -> None:
    """The log events of one run of TASK (default: its latest stage and attempt)."""
    from .local.logs import LogNotFoundError, follow_log

    ws = _workspace(repo, state_dir)
    try:
        for line in follow_log(ws, task, stage, attempt, follow):
            console.print(line, markup=False, highlight=False, soft_wrap=True)
    except LogNotFoundError as exc:
        raise _fail(str(exc)) from exc


@app.command()
def run(
    files: FilesOption,
    repo: RepoOption = None,
    state_dir: StateDirOption = None,
    keep_succeeded: Annotated[
        bool, typer.Option(help="Keep the worktrees of succeeded tasks (default: removed).")
    ] = False,
    remove_failed: Annotated[
        bool, typer.Option(help="Remove the worktrees of failed tasks too (default: kept).")
    ] = False,
    pool_size: Annotated[
        int, typer.Option(help="Worktrees kept checked out ahead of need.", min=0)
    ] = 2,
) -> None:
    """Apply FILES, then run their batches to the end: worktrees, agents, criteria, commits.

    Exit 0 when every batch succeeds, 1 when one fails, 2 on bad input. Killed or interrupted,
    the same command picks up where it stopped.
    """
    from .local.driving import drive

    ws = _workspace(repo, state_dir)
    loaded = _load_checked(files, ws)
    code = drive(
        ws,
        [item.resource for item in loaded],
        console,
        err_console,
        keep_succeeded=keep_succeeded,
        remove_failed=remove_failed,
        pool_size=pool_size,
    )
    raise typer.Exit(code)


@app.command()
def operator(
    namespace: Annotated[
        list[str] | None,
        typer.Option(
            "--namespace", "-n", help="Namespace to watch (repeatable); none: every namespace."
        ),
    ] = None,
    leader_election: Annotated[
        str | None,
        typer.Option(
            help="Name of the Lease electing the one replica that writes (more than one "
            "replica); unset: this process is the only one."
        ),
    ] = None,
    leader_election_namespace: Annotated[
        str | None,
        typer.Option(
            envvar="POD_NAMESPACE", help="Namespace of the Lease; default: $POD_NAMESPACE."
        ),
    ] = None,
    qps: Annotated[
        float, typer.Option(help="Kubernetes API requests per second; 0: no limit.")
    ] = 50.0,
    burst: Annotated[int, typer.Option(help="Requests allowed at once above --qps.")] = 100,
    liveness: Annotated[
        str, typer.Option(help="kopf's liveness endpoint; empty: none.")
    ] = "http://0.0.0.0:8080/healthz",
    metrics_port: Annotated[
        int, typer.Option(help="Port of the Prometheus /metrics endpoint; 0: none.")
    ] = 9090,
    runner_image: Annotated[
        str | None, typer.Option(help="Image of the init container, and of agents without one.")
    ] = None,
    image_pull_policy: Annotated[
        str, typer.Option(help="Always, IfNotPresent or Never.")
    ] = "IfNotPresent",
    workspace_storage_class: Annotated[
        str | None,
        typer.Option(help="Storage class of workspace claims; unset: the cluster default."),
    ] = None,
    workspace_size: Annotated[str, typer.Option(help="Size of a batch's workspace.")] = "10Gi",
    workspace_access_mode: Annotated[
        str, typer.Option(help="ReadWriteOnce, ReadWriteOncePod or ReadWriteMany.")
    ] = "ReadWriteOnce",
    retain_workspaces: Annotated[
        bool, typer.Option("--retain-workspaces", help="Keep a batch's claim when it is deleted.")
    ] = False,
    image_pull_grace_seconds: Annotated[
        int, typer.Option(help="How long a Pod may fail to pull its image before its run fails.")
    ] = 120,
    run_service_account: Annotated[
        str | None, typer.Option(help="Service account of run Pods (its token is not mounted).")
    ] = None,
    run_image_pull_secret: Annotated[
        list[str] | None,
        typer.Option(help="Secret to pull run images with (repeatable)."),
    ] = None,
    run_node_selector: Annotated[
        list[str] | None,
        typer.Option(help="KEY=VALUE a run Pod's node must have (repeatable)."),
    ] = None,
    run_tolerations: Annotated[
        str | None, typer.Option(help="Tolerations of run Pods, as a JSON list.")
    ] = None,
) -> None:
    """Run the Kubernetes operator: reconcile agentfleet resources into Pods."""
    import json
    import logging

    from .models.batch import WorkspaceAccessMode
    from .operator.main import Operator
    from .operator.pods import PodSettings
    from .operator.settings import OperatorSettings

    if image_pull_policy not in ("Always", "IfNotPresent", "Never"):
        print_error(f"--image-pull-policy {image_pull_policy!r}: use Always, IfNotPresent or Never")
        raise typer.Exit(EXIT_BAD_INPUT)
    modes = [m.value for m in WorkspaceAccessMode]
    if workspace_access_mode not in modes:
        print_error(f"--workspace-access-mode {workspace_access_mode!r}: use one of {modes}")
        raise typer.Exit(EXIT_BAD_INPUT)
    selector: dict[str, str] = {}
    for item in run_node_selector or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            print_error(f"--run-node-selector {item!r}: use KEY=VALUE")
            raise typer.Exit(EXIT_BAD_INPUT)
        selector[key] = value
    tolerations: list[Any] = []
    if run_tolerations:
        try:
            tolerations = json.loads(run_tolerations)
        except ValueError as exc:
            print_error(f"--run-tolerations: not JSON: {exc}")
            raise typer.Exit(EXIT_BAD_INPUT) from exc
        if not isinstance(tolerations, list) or not all(isinstance(t, dict) for t in tolerations):
            print_error("--run-tolerations: expected a JSON list of objects")
            raise typer.Exit(EXIT_BAD_INPUT)
    pod = PodSettings(
        image_pull_policy=image_pull_policy,  # type: ignore[arg-type]
        service_account_name=run_service_account,
        image_pull_secrets=tuple(run_image_pull_secret or ()),
        node_selector=selector,
        tolerations=tuple(tolerations),
        **({"runner_image": runner_image} if runner_image else {}),
    )
    settings = OperatorSettings(
        namespaces=tuple(namespace or ()),
        leader_election=leader_election,
        leader_election_namespace=leader_election_namespace or "default",
        qps=qps,
        burst=burst,
        liveness=liveness,
        metrics_port=metrics_port,
        pod=pod,
        workspace_storage_class=workspace_storage_class,
        workspace_size=workspace_size,
        workspace_access_mode=workspace_access_mode,
        retain_workspaces=retain_workspaces,
        image_pull_grace_seconds=image_pull_grace_seconds,
    )
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    Operator.build(settings).run()


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def runner(
    spec: Annotated[Path, typer.Option("--spec", help="The run spec (JSON).")],
    result: Annotated[Path, typer.Option("--result", help="Where to write the result.")],
) -> None:
    """Run one run from its spec: the program a Pod or a local process runs."""
    from .runner.main import main as runner_main

    raise typer.Exit(runner_main(["--spec", str(spec), "--result", str(result)]))


def main() -> None:
    app()


if __name__ == "__main__":
    main()
