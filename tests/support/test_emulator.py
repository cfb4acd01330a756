"""Each test proves one documented Kubernetes API behaviour of the filled-in emulator."""

from __future__ import annotations

import asyncio
import json
import shutil
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import kubernetes.client
import pytest
import pytest_asyncio
from kubernetes.client.rest import ApiException

from tests.support.emulator import FilledEmulator, serve_emulator
from tests.support.samples import BASE, GROUP, PLURAL, VERSION, WIDGET_CRD, widget

pytestmark = pytest.mark.asyncio

MERGE = {"Content-Type": "application/merge-patch+json"}
JSON_PATCH = {"Content-Type": "application/json-patch+json"}


@pytest_asyncio.fixture
async def emu() -> AsyncIterator[FilledEmulator]:
    async with serve_emulator() as emulator:
        emulator.add_crd(WIDGET_CRD)
        yield emulator


@pytest.fixture
def api(emu: FilledEmulator) -> Iterator[kubernetes.client.ApiClient]:
    config = kubernetes.client.Configuration()
    config.host = str(emu.url).rstrip("/")
    with kubernetes.client.ApiClient(config) as client:
        yield client


@pytest_asyncio.fixture
async def http(emu: FilledEmulator) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(base_url=emu.url) as session:
        yield session


async def call(method: Any, *args: Any, **kwargs: Any) -> Any:
    """Run a sync client call off the loop, which serves the emulator."""
    return await asyncio.to_thread(method, *args, **kwargs)


async def request(
    http: aiohttp.ClientSession, method: str, path: str, body: Any = None, **kw: Any
) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body)
    headers = {"Content-Type": "application/json", **kw.pop("headers", {})}
    async with http.request(method, path, data=data, headers=headers, **kw) as resp:
        return resp.status, await resp.json(content_type=None)


async def read_watch(
    http: aiohttp.ClientSession, path: str, count: int, timeout: float = 3.0
) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    async with asyncio.timeout(timeout), http.get(path) as resp:
        async for line in resp.content:
            if line.strip():
                events.append(json.loads(line))
            if len(events) >= count:
                break
    return events


# 1. metadata on create


async def test_create_answers_201_with_namespace_from_url_uid_rv_timestamp_generation(
    http: aiohttp.ClientSession,
) -> None:
    status, obj = await request(http, "POST", BASE, widget("w1"))
    assert status == 201
    meta = obj["metadata"]
    assert meta["namespace"] == "ns1"
    assert len(meta["uid"]) == 36
    assert int(meta["resourceVersion"]) > 0
    assert meta["creationTimestamp"].endswith("Z")
    assert meta["generation"] == 1


async def test_official_client_create_returns_the_created_object(
    api: kubernetes.client.ApiClient,
) -> None:
    custom = kubernetes.client.CustomObjectsApi(api)
    obj = await call(
        custom.create_namespaced_custom_object, GROUP, VERSION, "ns1", PLURAL, widget("w1")
    )
    assert obj["metadata"]["namespace"] == "ns1"
    core = kubernetes.client.CoreV1Api(api)
    cm = kubernetes.client.V1ConfigMap(metadata=kubernetes.client.V1ObjectMeta(name="c"))
    created = await call(core.create_namespaced_config_map, "ns2", cm)
    assert created.metadata.namespace == "ns2"
    assert created.metadata.uid


async def test_generate_name_appends_a_random_suffix(http: aiohttp.ClientSession) -> None:
    body = widget("")
    body["metadata"] = {"generateName": "auto-"}
    names = set()
    for _ in range(3):
        status, obj = await request(http, "POST", BASE, body)
        assert status == 201
        names.add(obj["metadata"]["name"])
    assert len(names) == 3
    assert all(n.startswith("auto-") and len(n) == len("auto-") + 5 for n in names)


async def test_create_of_an_existing_name_answers_409_already_exists(
    http: aiohttp.ClientSession,
) -> None:
    await request(http, "POST", BASE, widget("w1"))
    status, body = await request(http, "POST", BASE, widget("w1"))
    assert (status, body["reason"]) == (409, "AlreadyExists")


async def test_resource_version_is_monotonic_and_changes_on_every_write(
    http: aiohttp.ClientSession,
) -> None:
    _, obj = await request(http, "POST", BASE, widget("w1"))
    versions = [int(obj["metadata"]["resourceVersion"])]
    for patch in ({"metadata": {"labels": {"a": "1"}}}, {"spec": {"size": 2}}):
        _, obj = await request(http, "PATCH", f"{BASE}/w1", patch, headers=MERGE)
        versions.append(int(obj["metadata"]["resourceVersion"]))
    _, obj = await request(http, "PATCH", f"{BASE}/w1/status", {"status": {"x": 1}}, headers=MERGE)
    versions.append(int(obj["metadata"]["resourceVersion"]))
    assert versions == sorted(set(versions))


async def test_generation_increments_on_spec_changes_only(http: aiohttp.ClientSession) -> None:
    await request(http, "POST", BASE, widget("w1"))
    url = f"{BASE}/w1"
    _, obj = await request(http, "PATCH", url, {"metadata": {"labels": {"a": "b"}}}, headers=MERGE)
    assert obj["metadata"]["generation"] == 1
    _, obj = await request(http, "PATCH", f"{url}/status", {"status": {"p": 1}}, headers=MERGE)
    assert obj["metadata"]["generation"] == 1
    _, obj = await request(http, "PATCH", url, {"spec": {"size": 5}}, headers=MERGE)
    assert obj["metadata"]["generation"] == 2


# 2. status subresource


async def test_status_subresource_write_changes_only_status(http: aiohttp.ClientSession) -> None:
    await request(http, "POST", BASE, widget("w1"))
    patch = {"spec": {"size": 9}, "metadata": {"labels": {"x": "y"}}, "status": {"phase": "Ok"}}
    status, obj = await request(http, "PATCH", f"{BASE}/w1/status", patch, headers=MERGE)
    assert status == 200
    assert obj["status"] == {"phase": "Ok"}
    assert obj["spec"]["size"] == 1
    assert "labels" not in obj["metadata"]
    obj["status"] = {"phase": "Replaced"}
    obj["spec"]["size"] = 7
    status, obj = await request(http, "PUT", f"{BASE}/w1/status", obj)
    assert (status, obj["status"], obj["spec"]["size"]) == (200, {"phase": "Replaced"}, 1)


async def test_main_resource_write_ignores_status(http: aiohttp.ClientSession) -> None:
    body = widget("w1")
    body["status"] = {"phase": "Sneaky"}
    _, obj = await request(http, "POST", BASE, body)
    assert "status" not in obj  # status is dropped on create
    patch = {"spec": {"size": 3}, "status": {"phase": "Sneaky"}}
    _, obj = await request(http, "PATCH", f"{BASE}/w1", patch, headers=MERGE)
    assert obj["spec"]["size"] == 3
    assert "status" not in obj


# 3. patches


async def test_json_patch_with_a_failing_test_op_answers_422(http: aiohttp.ClientSession) -> None:
    await request(http, "POST", BASE, widget("w1"))
    ops = [
        {"op": "test", "path": "/metadata/resourceVersion", "value": "1"},
        {"op": "add", "path": "/metadata/finalizers", "value": ["x"]},
    ]
    status, body = await request(http, "PATCH", f"{BASE}/w1", ops, headers=JSON_PATCH)
    assert (status, body["kind"]) == (422, "Status")


async def test_json_patch_and_merge_patch_both_apply(http: aiohttp.ClientSession) -> None:
    _, obj = await request(http, "POST", BASE, widget("w1"))
    ops = [
        {
            "op": "test",
            "path": "/metadata/resourceVersion",
            "value": obj["metadata"]["resourceVersion"],
        },
        {"op": "add", "path": "/metadata/finalizers", "value": ["example.dev/f"]},
    ]
    status, obj = await request(http, "PATCH", f"{BASE}/w1", ops, headers=JSON_PATCH)
    assert (status, obj["metadata"]["finalizers"]) == (200, ["example.dev/f"])
    patch = {"metadata": {"finalizers": None, "labels": {"k": "v"}}}
    status, obj = await request(http, "PATCH", f"{BASE}/w1", patch, headers=MERGE)
    assert status == 200
    assert "finalizers" not in obj["metadata"]
    assert obj["metadata"]["labels"] == {"k": "v"}


async def test_write_with_a_stale_resource_version_answers_409_conflict(
    http: aiohttp.ClientSession,
) -> None:
    _, obj = await request(http, "POST", BASE, widget("w1"))
    stale = obj["metadata"]["resourceVersion"]
    await request(http, "PATCH", f"{BASE}/w1", {"spec": {"size": 2}}, headers=MERGE)
    patch = {"metadata": {"resourceVersion": stale}, "spec": {"size": 3}}
    status, body = await request(http, "PATCH", f"{BASE}/w1", patch, headers=MERGE)
    assert (status, body["reason"]) == (409, "Conflict")


# 4. list and watch


async def test_list_filters_by_equality_and_set_based_label_selectors(
    api: kubernetes.client.ApiClient, http: aiohttp.ClientSession
) -> None:
    for name, labels in [("a", {"app": "x", "tier": "web"}), ("b", {"app": "y"}), ("c", {})]:
        await request(http, "POST", BASE, widget(name, labels=labels))
    custom = kubernetes.client.CustomObjectsApi(api)

    async def names(selector: str) -> list[str]:
        listing = await call(
            custom.list_namespaced_custom_object,
            GROUP,
            VERSION,
            "ns1",
            PLURAL,
            label_selector=selector,
        )
        assert listing["kind"] == "WidgetList"
        return sorted(o["metadata"]["name"] for o in listing["items"])

    assert await names("app=x") == ["a"]
    assert await names("app!=x") == ["b", "c"]
    assert await names("app in (x, y)") == ["a", "b"]
    assert await names("app notin (x)") == ["b", "c"]
    assert await names("tier") == ["a"]
    assert await names("!tier") == ["b", "c"]
    assert await names("app,tier=web") == ["a"]


async def test_list_filters_by_metadata_name_and_namespace_field_selectors(
    http: aiohttp.ClientSession,
) -> None:
    await request(http, "POST", BASE, widget("a"))
    await request(http, "POST", BASE.replace("ns1", "ns2"), widget("a"))
    await request(http, "POST", BASE, widget("b"))
    every = f"/apis/{GROUP}/{VERSION}/{PLURAL}"
    _, listing = await request(http, "GET", every, params={"fieldSelector": "metadata.name=a"})
    assert sorted(o["metadata"]["namespace"] for o in listing["items"]) == ["ns1", "ns2"]
    selector = "metadata.namespace=ns1,metadata.name!=a"
    _, listing = await request(http, "GET", every, params={"fieldSelector": selector})
    assert [o["metadata"]["name"] for o in listing["items"]] == ["b"]
    status, _ = await request(http, "GET", every, params={"fieldSelector": "spec.size=1"})
    assert status == 400  # unsupported field labels are refused, as by the API


async def test_watch_from_a_resource_version_replays_only_later_events(
    http: aiohttp.ClientSession,
) -> None:
    await request(http, "POST", BASE, widget("old"))
    _, listing = await request(http, "GET", BASE)
    since = listing["metadata"]["resourceVersion"]
    await request(http, "POST", BASE, widget("new"))
    await request(http, "PATCH", f"{BASE}/old", {"spec": {"size": 4}}, headers=MERGE)
    events = await read_watch(http, f"{BASE}?watch=true&resourceVersion={since}", 2)
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [
        ("ADDED", "new"),
        ("MODIFIED", "old"),
    ]


async def test_watch_without_resource_version_starts_with_synthetic_added_events(
    http: aiohttp.ClientSession,
) -> None:
    await request(http, "POST", BASE, widget("a"))
    events = await read_watch(http, f"{BASE}?watch=true", 1)
    assert events[0]["type"] == "ADDED"


async def test_watch_honours_timeout_seconds(http: aiohttp.ClientSession) -> None:
    loop = asyncio.get_running_loop()
    start = loop.time()
    events = await read_watch(http, f"{BASE}?watch=true&timeoutSeconds=1", 99, timeout=5)
    assert events == []
    assert 0.9 <= loop.time() - start < 3


async def test_watch_loses_no_event_between_list_and_watch(
    emu: FilledEmulator, http: aiohttp.ClientSession
) -> None:
    _, listing = await request(http, "GET", BASE)
    since = listing["metadata"]["resourceVersion"]
    writer = asyncio.gather(*(request(http, "POST", BASE, widget(f"w{i}")) for i in range(20)))
    watched = asyncio.create_task(
        read_watch(http, f"{BASE}?watch=true&resourceVersion={since}", 20)
    )
    await writer
    events = await watched
    assert sorted(e["object"]["metadata"]["name"] for e in events) == sorted(
        f"w{i}" for i in range(20)
    )


async def test_watch_with_label_selector_sees_objects_leaving_it_as_deleted(
    http: aiohttp.ClientSession,
) -> None:
    await request(http, "POST", BASE, widget("a", labels={"team": "x"}))
    _, listing = await request(http, "GET", BASE)
    since = listing["metadata"]["resourceVersion"]
    await request(http, "POST", BASE, widget("b", labels={"team": "y"}))
    patch = {"metadata": {"labels": {"team": "z"}}}
    await request(http, "PATCH", f"{BASE}/a", patch, headers=MERGE)
    url = f"{BASE}?watch=true&resourceVersion={since}&labelSelector=team%3Dx"
    events = await read_watch(http, url, 1)
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [("DELETED", "a")]


# 5. replace, delete, finalizers, garbage collection


async def test_put_replaces_the_whole_object(http: aiohttp.ClientSession) -> None:
    body = widget("w1")
    body["spec"]["extra"] = {"k": "v"}
    _, obj = await request(http, "POST", BASE, body)
    obj["spec"] = {"size": 8}
    status, obj = await request(http, "PUT", f"{BASE}/w1", obj)
    assert status == 200
    assert obj["spec"] == {"size": 8, "color": "blue"}
    assert obj["metadata"]["generation"] == 2


async def test_delete_with_finalizers_sets_deletion_timestamp_and_waits_for_them(
    emu: FilledEmulator, http: aiohttp.ClientSession
) -> None:
    await request(http, "POST", BASE, widget("w1", finalizers=["example.dev/hold"]))
    status, obj = await request(http, "DELETE", f"{BASE}/w1")
    assert status == 200
    assert obj["metadata"]["deletionTimestamp"]
    status, obj = await request(http, "GET", f"{BASE}/w1")
    assert status == 200
    assert obj["metadata"]["deletionTimestamp"]
    patch = {"metadata": {"finalizers": None}}
    status, _ = await request(http, "PATCH", f"{BASE}/w1", patch, headers=MERGE)
    assert status == 200
    status, body = await request(http, "GET", f"{BASE}/w1")
    assert (status, body["reason"]) == (404, "NotFound")


async def test_deleting_an_owner_garbage_collects_its_dependents(
    emu: FilledEmulator, http: aiohttp.ClientSession
) -> None:
    _, owner = await request(http, "POST", BASE, widget("owner"))
    ref = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Widget",
        "name": "owner",
        "uid": owner["metadata"]["uid"],
    }
    _, child = await request(http, "POST", BASE, widget("child", ownerReferences=[ref]))
    ref = {**ref, "name": "child", "uid": child["metadata"]["uid"]}
    pod = {"metadata": {"name": "grandchild", "ownerReferences": [ref]}, "spec": {}}
    status, _ = await request(http, "POST", "/api/v1/namespaces/ns1/pods", pod)
    assert status == 201
    await request(http, "DELETE", f"{BASE}/owner")
    await asyncio.sleep(0.05)  # background propagation
    status, _ = await request(http, "GET", f"{BASE}/child")
    assert status == 404
    status, _ = await request(http, "GET", "/api/v1/namespaces/ns1/pods/grandchild")
    assert status == 404


async def test_deletecollection_deletes_the_selected_objects(http: aiohttp.ClientSession) -> None:
    await request(http, "POST", BASE, widget("a", labels={"k": "1"}))
    await request(http, "POST", BASE, widget("b", labels={"k": "2"}))
    status, _ = await request(http, "DELETE", BASE, params={"labelSelector": "k=1"})
    assert status == 200
    _, listing = await request(http, "GET", BASE)
    assert [o["metadata"]["name"] for o in listing["items"]] == ["b"]


# 6. CRD registration, schema validation, pruning


async def test_posting_a_crd_registers_its_resource(
    api: kubernetes.client.ApiClient, http: aiohttp.ClientSession
) -> None:
    crd = json.loads(json.dumps(WIDGET_CRD).replace("widget", "gadget").replace("Widget", "Gadget"))
    crd["spec"]["scope"] = "Cluster"
    del crd["spec"]["versions"][0]["subresources"]
    ext = kubernetes.client.ApiextensionsV1Api(api)
    created = await call(ext.create_custom_resource_definition, crd)
    conditions = {c.type: c.status for c in created.status.conditions}
    assert conditions["Established"] == "True"
    status, obj = await request(http, "POST", f"/apis/{GROUP}/{VERSION}/gadgets", widget("g"))
    assert status == 201
    assert "namespace" not in obj["metadata"]
    _, doc = await request(http, "GET", f"/apis/{GROUP}/{VERSION}")
    names = {r["name"]: r for r in doc["resources"]}
    assert names["gadgets"]["kind"] == "Gadget"
    assert names["gadgets"]["namespaced"] is False
    assert "gadgets/status" not in names
    assert "widgets/status" in names
    await call(ext.delete_custom_resource_definition, f"gadgets.{GROUP}")
    status, _ = await request(http, "GET", f"/apis/{GROUP}/{VERSION}/gadgets")
    assert status == 404  # deleting the CRD stops serving its resource


async def test_schema_violation_answers_422_with_a_status_naming_the_field(
    http: aiohttp.ClientSession,
) -> None:
    body = widget("w1")
    body["spec"] = {"size": "big", "color": "green"}
    status, err = await request(http, "POST", BASE, body)
    assert (status, err["kind"], err["reason"]) == (422, "Status", "Invalid")
    fields = {cause["field"] for cause in err["details"]["causes"]}
    assert fields == {"spec.size", "spec.color"}
    assert "spec.size" in err["message"]
    body["spec"] = {}
    status, err = await request(http, "POST", BASE, body)
    assert status == 422
    assert err["details"]["causes"][0] == {
        "reason": "FieldValueRequired",
        "message": "Required value",
        "field": "spec.size",
    }


async def test_unknown_fields_are_pruned_unless_preserved_and_defaults_applied(
    http: aiohttp.ClientSession,
) -> None:
    body = widget("w1")
    body["spec"]["unknown"] = 1
    body["spec"]["extra"] = {"anything": {"goes": True}}
    body["toplevel"] = "x"
    _, obj = await request(http, "POST", BASE, body)
    assert obj["spec"] == {"size": 1, "color": "blue", "extra": {"anything": {"goes": True}}}
    assert "toplevel" not in obj


# 7. discovery


async def test_discovery_documents_carry_kind_and_group_version(
    http: aiohttp.ClientSession,
) -> None:
    _, api = await request(http, "GET", "/api")
    assert (api["kind"], api["versions"]) == ("APIVersions", ["v1"])
    _, core = await request(http, "GET", "/api/v1")
    assert (core["kind"], core["groupVersion"]) == ("APIResourceList", "v1")
    assert {"pods", "pods/status", "namespaces"} <= {r["name"] for r in core["resources"]}
    _, apis = await request(http, "GET", "/apis")
    assert apis["kind"] == "APIGroupList"
    group = next(g for g in apis["groups"] if g["name"] == GROUP)
    assert group["preferredVersion"]["groupVersion"] == f"{GROUP}/{VERSION}"
    _, doc = await request(http, "GET", f"/apis/{GROUP}/{VERSION}")
    assert (doc["kind"], doc["groupVersion"]) == ("APIResourceList", f"{GROUP}/{VERSION}")
    status, _ = await request(http, "GET", "/apis/nowhere.dev/v1")
    assert status == 404


async def test_official_client_reads_core_groups_and_namespaces(
    api: kubernetes.client.ApiClient,
) -> None:
    groups = await call(kubernetes.client.ApisApi(api).get_api_versions)
    assert GROUP in {g.name for g in groups.groups}
    core = kubernetes.client.CoreV1Api(api)
    ns = kubernetes.client.V1Namespace(metadata=kubernetes.client.V1ObjectMeta(name="team"))
    await call(core.create_namespace, ns)
    listing = await call(core.list_namespace)
    assert [n.metadata.name for n in listing.items] == ["team"]


async def test_get_as_table_renders_additional_printer_columns(
    http: aiohttp.ClientSession,
) -> None:
    await request(http, "POST", BASE, widget("w1", size=3))
    status = {"status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}}
    await request(http, "PATCH", f"{BASE}/w1/status", status, headers=MERGE)
    accept = {"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"}
    _, table = await request(http, "GET", BASE, headers=accept)
    assert table["kind"] == "Table"
    names = [c["name"] for c in table["columnDefinitions"]]
    assert names == ["Name", "Size", "Phase", "Ready", "Age"]
    assert table["rows"][0]["cells"][:4] == ["w1", 3, "Running", "True"]
    assert table["rows"][0]["object"]["kind"] == "PartialObjectMetadata"


async def test_dry_run_validates_but_stores_nothing(http: aiohttp.ClientSession) -> None:
    status, obj = await request(http, "POST", BASE, widget("w1"), params={"dryRun": "All"})
    assert (status, obj["spec"]["color"]) == (201, "blue")
    status, _ = await request(http, "GET", f"{BASE}/w1")
    assert status == 404
    await request(http, "POST", BASE, widget("w1"))
    patch = {"spec": {"size": 9}}
    status, obj = await request(
        http, "PATCH", f"{BASE}/w1", patch, headers=MERGE, params={"dryRun": "All"}
    )
    assert (status, obj["spec"]["size"]) == (200, 9)
    _, obj = await request(http, "GET", f"{BASE}/w1")
    assert obj["spec"]["size"] == 1


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
async def test_kubectl_applies_gets_patches_status_and_deletes(
    emu: FilledEmulator, tmp_path: Path
) -> None:
    manifest = tmp_path / "w.json"
    manifest.write_text(json.dumps({**widget("w1", namespace="ns1"), "spec": {"size": 4}}))
    base = ["kubectl", f"--server={str(emu.url).rstrip('/')}", f"--cache-dir={tmp_path / 'c'}"]

    async def kubectl(*args: str) -> str:
        proc = await asyncio.create_subprocess_exec(
            *base, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
        )
        out, _ = await proc.communicate()
        assert proc.returncode == 0, out.decode()
        return out.decode()

    await kubectl("apply", "--validate=false", "-f", str(manifest))
    status = '{"status": {"phase": "Done"}}'
    await kubectl(
        "patch", "wd", "w1", "-n", "ns1", "--subresource=status", "--type=merge", "-p", status
    )
    table = await kubectl("get", "widgets", "-n", "ns1")
    assert table.split("\n")[0].split() == ["NAME", "SIZE", "PHASE", "AGE"]
    assert table.split("\n")[1].split()[:3] == ["w1", "4", "Done"]
    await kubectl("label", "widget", "w1", "-n", "ns1", "team=x")
    assert "w1" in await kubectl("get", "widgets", "-A", "-l", "team=x")
    await kubectl("delete", "widget", "w1", "-n", "ns1", "--wait=true", "--timeout=5s")
    assert emu.get_object(PLURAL, "ns1", "w1") is None


async def test_pod_status_starts_pending_and_tests_can_play_the_kubelet(
    emu: FilledEmulator, http: aiohttp.ClientSession
) -> None:
    pod = {"metadata": {"name": "p"}, "spec": {"containers": []}, "status": {"phase": "Running"}}
    _, obj = await request(http, "POST", "/api/v1/namespaces/ns1/pods", pod)
    assert obj["status"] == {"phase": "Pending"}  # clients cannot create a Pod's status
    _, listing = await request(http, "GET", "/api/v1/namespaces/ns1/pods")
    since = listing["metadata"]["resourceVersion"]
    terminated = {"terminated": {"exitCode": 0, "message": '{"ok": true}'}}
    status = {"phase": "Succeeded", "containerStatuses": [{"name": "main", "state": terminated}]}
    emu.write_object("pods", {"metadata": {"name": "p", "namespace": "ns1"}, "status": status})
    url = f"/api/v1/namespaces/ns1/pods?watch=true&resourceVersion={since}"
    events = await read_watch(http, url, 1)
    assert events[0]["type"] == "MODIFIED"
    assert events[0]["object"]["status"]["phase"] == "Succeeded"


# Test-side reactions declared with kmock's DSL still win.


async def test_kmock_reactions_declared_by_a_test_take_precedence(
    emu: FilledEmulator, http: aiohttp.ClientSession
) -> None:
    emu["get", f"{BASE}/w1"] << 503
    await request(http, "POST", BASE, widget("w1"))
    async with http.get(f"{BASE}/w1") as resp:
        assert resp.status == 503


# A trivial kopf operator works against it.


def _run_kopf(url: str, stop: threading.Event, ready: threading.Event) -> None:
    import kopf

    registry = kopf.OperatorRegistry()

    @kopf.on.login(registry=registry)
    def login(**_: Any) -> kopf.ConnectionInfo:
        return kopf.ConnectionInfo(server=url, insecure=True)

    @kopf.on.create(GROUP, VERSION, PLURAL, registry=registry)
    def created(patch: kopf.Patch, **_: Any) -> None:
        patch.status["phase"] = "Seen"

    @kopf.on.delete(GROUP, VERSION, PLURAL, registry=registry)
    def deleted(**_: Any) -> None:
        pass

    settings = kopf.OperatorSettings()
    settings.peering.standalone = True
    settings.networking.error_backoffs = [0.1, 0.2, 0.5]
    settings.watching.reconnect_backoff = 0.01
    settings.queueing.idle_timeout = 0.5
    settings.persistence.consistency_timeout = 1
    settings.background.instant_exit_timeout = 0.1
    asyncio.run(
        kopf.operator(
            registry=registry,
            settings=settings,
            clusterwide=True,
            stop_flag=stop,
            ready_flag=ready,
        )
    )


async def test_kopf_operator_patches_status_and_releases_its_finalizer(
    emu: FilledEmulator, http: aiohttp.ClientSession
) -> None:
    stop, ready = threading.Event(), threading.Event()
    thread = threading.Thread(target=_run_kopf, args=(str(emu.url), stop, ready), daemon=True)
    thread.start()
    try:
        await asyncio.to_thread(ready.wait, 10)
        await emu.wait_for_watches(PLURAL)
        await request(http, "POST", BASE, widget("w1"))
        async with asyncio.timeout(10):
            while ((emu.get_object(PLURAL, "ns1", "w1") or {}).get("status") or {}).get(
                "phase"
            ) != "Seen":
                await asyncio.sleep(0.05)
        assert emu.get_object(PLURAL, "ns1", "w1")["metadata"]["finalizers"]  # type: ignore[index]
        await request(http, "DELETE", f"{BASE}/w1")
        async with asyncio.timeout(10):
            while emu.get_object(PLURAL, "ns1", "w1") is not None:
                await asyncio.sleep(0.05)
    finally:
        stop.set()
        await asyncio.to_thread(thread.join, 10)
    assert not thread.is_alive()


async def test_unknown_resources_answer_404(api: kubernetes.client.ApiClient) -> None:
    custom = kubernetes.client.CustomObjectsApi(api)
    with pytest.raises(ApiException) as info:
        await call(custom.list_cluster_custom_object, "nowhere.dev", "v1", "things")
    assert info.value.status == 404
