"""A kmock KubernetesEmulator filled in where a kopf operator relies on the real API's behaviour."""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import datetime
import json
import random
import re
import traceback
import uuid
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from typing import Any

import aiohttp.web
import attrs
import jsonpatch
import jsonschema
import kmock
from kmock._internal import rendering

from tests.support.schemas import make_validator, prune_and_default, validation_causes
from tests.support.selectors import (
    Matcher,
    SelectorError,
    parse_field_selector,
    parse_label_selector,
)
from tests.support.tables import render_table, wants_table

JSON = dict[str, Any]
ResKey = tuple[str, str, str]  # (group, version, plural)
ObjKey = tuple[str | None, str]  # (namespace, name)

CRD_KEY: ResKey = ("apiextensions.k8s.io", "v1", "customresourcedefinitions")
_NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
_GENERATE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
_VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
_STATUS_VERBS = ["get", "patch", "update"]


class ApiError(Exception):
    """A failure the API server reports as a Status object with an HTTP code."""

    def __init__(self, code: int, reason: str, message: str, details: JSON | None = None) -> None:
        super().__init__(message)
        self.code, self.reason, self.message, self.details = code, reason, message, details or {}

    def body(self) -> JSON:
        return {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "details": self.details,
            "code": self.code,
        }


@dataclass
class ResourceType:
    """What the API knows of a served resource: what discovery and validation need."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool = True
    status: bool = False
    singular: str = ""
    short_names: list[str] = field(default_factory=list)
    categories: list[str] = field(default_factory=list)
    validator: jsonschema.Validator | None = None
    printer_columns: list[JSON] = field(default_factory=list)
    schema: JSON | None = None

    @property
    def key(self) -> ResKey:
        return (self.group, self.version, self.plural)

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def describe(self) -> list[JSON]:
        main: JSON = {
            "name": self.plural,
            "singularName": self.singular or self.kind.lower(),
            "namespaced": self.namespaced,
            "kind": self.kind,
            "verbs": _VERBS,
        }
        if self.short_names:
            main["shortNames"] = self.short_names
        if self.categories:
            main["categories"] = self.categories
        entries = [main]
        if self.status:
            entries.append(
                {
                    "name": f"{self.plural}/status",
                    "singularName": "",
                    "namespaced": self.namespaced,
                    "kind": self.kind,
                    "verbs": _STATUS_VERBS,
                }
            )
        return entries


BUILTIN_TYPES: list[ResourceType] = [
    ResourceType(
        "", "v1", "namespaces", "Namespace", namespaced=False, status=True, short_names=["ns"]
    ),
    ResourceType("", "v1", "pods", "Pod", status=True, short_names=["po"]),
    ResourceType("", "v1", "services", "Service", status=True, short_names=["svc"]),
    ResourceType("", "v1", "configmaps", "ConfigMap", short_names=["cm"]),
    ResourceType("", "v1", "secrets", "Secret"),
    ResourceType("", "v1", "serviceaccounts", "ServiceAccount", short_names=["sa"]),
    ResourceType("", "v1", "events", "Event", short_names=["ev"]),
    ResourceType(
        "",
        "v1",
        "persistentvolumeclaims",
        "PersistentVolumeClaim",
        status=True,
        short_names=["pvc"],
    ),
    ResourceType("", "v1", "nodes", "Node", namespaced=False, status=True, short_names=["no"]),
    ResourceType("apps", "v1", "deployments", "Deployment", status=True, short_names=["deploy"]),
    ResourceType("batch", "v1", "jobs", "Job", status=True),
    ResourceType("coordination.k8s.io", "v1", "leases", "Lease"),
    ResourceType("events.k8s.io", "v1", "events", "Event", short_names=["ev"]),
    ResourceType(
        "networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy", short_names=["netpol"]
    ),
    ResourceType(
        *CRD_KEY, "CustomResourceDefinition", namespaced=False, status=True, short_names=["crd"]
    ),
]


@dataclass
class _Route:
    """A parsed resource URL: /api/v1/namespaces/NS/PLURAL/NAME/SUBRESOURCE."""

    group: str
    version: str
    plural: str | None = None
    namespace: str | None = None
    name: str | None = None
    subresource: str | None = None


def parse_route(path: str) -> _Route | None:
    """Parse a resource path, including /api/v1/namespaces[/NAME[/status]] that kmock misreads."""
    parts = [p for p in path.strip("/").split("/") if p]
    if len(parts) >= 2 and parts[0] == "api":
        route, rest = _Route("", parts[1]), parts[2:]
    elif len(parts) >= 3 and parts[0] == "apis":
        route, rest = _Route(parts[1], parts[2]), parts[3:]
    else:
        return None
    if len(rest) >= 3 and rest[0] == "namespaces" and rest[2] not in ("status", "finalize"):
        route.namespace, rest = rest[1], rest[2:]
    if rest:
        route.plural = rest[0]
    if len(rest) >= 2:
        route.name = rest[1]
    if len(rest) >= 3:
        route.subresource = "/".join(rest[2:])
    return route


def _now() -> str:
    return datetime.datetime.now(tz=datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _copy(obj: Any) -> Any:
    """Deep-copy JSON data; faster than copy.deepcopy for plain JSON."""
    return json.loads(json.dumps(obj))


def _without(obj: JSON, *keys: str) -> JSON:
    return {k: v for k, v in obj.items() if k not in keys}


def _json_response(body: Any, status: int = 200) -> aiohttp.web.Response:
    return aiohttp.web.Response(
        body=json.dumps(body).encode(), status=status, content_type="application/json"
    )


def _json_body(request: rendering.Request) -> Any:
    """The request body as JSON, or None (kmock leaves `data` empty where its URL parsing fails)."""
    ctype = (request.headers.get("Content-Type") or "").split(";")[0].strip().lower()
    if ctype and "json" not in ctype and "yaml" not in ctype:
        raise ApiError(415, "UnsupportedMediaType", f"unsupported media type: {ctype}")
    try:
        return json.loads(request.body) if request.body else None
    except ValueError as e:
        raise ApiError(400, "BadRequest", f"the request body is not valid JSON: {e}") from e


def merge_patch(target: Any, patch: Any) -> Any:
    """Apply an RFC 7386 JSON merge patch: null deletes, dicts merge, everything else replaces."""
    if not isinstance(patch, dict):
        return _copy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


@dataclass
class _Watcher:
    """One open watch stream: its filters and the queue its events are pushed to."""

    namespace: str | None
    name: str | None
    labels: Matcher | None
    fields: Matcher | None
    queue: asyncio.Queue[JSON | None] = field(default_factory=asyncio.Queue)

    def matches(self, obj: JSON | None) -> bool:
        if obj is None:
            return False
        meta = obj.get("metadata", {})
        if self.namespace is not None and meta.get("namespace") != self.namespace:
            return False
        if self.name is not None and meta.get("name") != self.name:
            return False
        if self.labels is not None and not self.labels(meta.get("labels") or {}):
            return False
        return self.fields is None or self.fields(obj)

    def translate(self, kind: str, obj: JSON, old: JSON | None) -> JSON | None:
        """Turn a store event into this watcher's view: leaving its selector looks DELETED."""
        new_ok = self.matches(obj)
        if kind == "DELETED":
            return {"type": "DELETED", "object": obj} if new_ok else None
        old_ok = self.matches(old)
        if new_ok and (old_ok or kind == "ADDED"):
            return {"type": kind, "object": obj}
        if new_ok:
            return {"type": "ADDED", "object": obj}
        if old_ok:
            return {"type": "DELETED", "object": obj}
        return None


@attrs.define(kw_only=True)
class FilledEmulator(kmock.KubernetesEmulator):
    """The Kubernetes API behaviours a kopf operator relies on, served from memory.

    Resource requests are served by an indexed store here, not by kmock's
    request-history filters, which is what makes it fast; reactions the test
    adds with kmock's DSL (``emu['get /x'] << 500``) still take precedence.
    """

    _types: dict[ResKey, ResourceType] = attrs.field(factory=dict, init=False)
    _store: dict[ResKey, dict[ObjKey, JSON]] = attrs.field(factory=dict, init=False)
    _history: dict[ResKey, list[tuple[int, str, JSON, JSON | None]]] = attrs.field(
        factory=dict, init=False
    )
    _history_rvs: dict[ResKey, list[int]] = attrs.field(factory=dict, init=False)
    _watchers: dict[ResKey, list[_Watcher]] = attrs.field(factory=dict, init=False)
    _rv: int = attrs.field(default=1000, init=False)
    _builtin_payloads: int = attrs.field(default=0, init=False)
    _gc_pending: bool = attrs.field(default=False, init=False)
    watch_requests: dict[str, int] = attrs.field(factory=dict, init=False)

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        self._builtin_payloads = len(self._payloads)
        for rtype in BUILTIN_TYPES:
            self.register(rtype)

    # -- registration ------------------------------------------------------------------------

    def register(self, rtype: ResourceType) -> None:
        """Serve a resource type (used for built-ins and for every CRD version)."""
        self._types[rtype.key] = rtype
        self._store.setdefault(rtype.key, {})
        self._history.setdefault(rtype.key, [])
        self._history_rvs.setdefault(rtype.key, [])
        self._watchers.setdefault(rtype.key, [])

    def _register_crd(self, crd: JSON) -> None:
        spec = crd.get("spec", {})
        names = spec.get("names", {})
        for version in spec.get("versions", []):
            if not version.get("served", True):
                continue
            schema = (version.get("schema") or {}).get("openAPIV3Schema")
            self.register(
                ResourceType(
                    group=spec["group"],
                    version=version["name"],
                    plural=names["plural"],
                    kind=names["kind"],
                    namespaced=spec.get("scope", "Namespaced") == "Namespaced",
                    status="status" in (version.get("subresources") or {}),
                    singular=names.get("singular", ""),
                    short_names=list(names.get("shortNames", [])),
                    categories=list(names.get("categories", [])),
                    validator=make_validator(schema),
                    printer_columns=list(version.get("additionalPrinterColumns") or []),
                    schema=schema,
                )
            )

    def _unregister_crd(self, crd: JSON) -> None:
        spec = crd.get("spec", {})
        for version in spec.get("versions", []):
            key = (spec["group"], version["name"], spec.get("names", {}).get("plural", ""))
            for watcher in self._watchers.pop(key, []):
                watcher.queue.put_nowait(None)
            for mapping in (self._types, self._store, self._history, self._history_rvs):
                mapping.pop(key, None)  # type: ignore[attr-defined]

    def add_crd(self, crd: JSON) -> JSON:
        """Register a CRD from the test side, as if it were POSTed (returns the stored CRD)."""
        return self._create(self._types[CRD_KEY], None, _copy(crd), {})

    # -- test-side access --------------------------------------------------------------------

    @property
    def resource_version(self) -> int:
        return self._rv

    def find_type(self, plural: str, group: str | None = None) -> ResourceType:
        """Find a served type by plural (and group), for tests that do not care about versions."""
        for rtype in self._types.values():
            if rtype.plural == plural and (group is None or rtype.group == group):
                return rtype
        raise KeyError(plural)

    def get_object(
        self, plural: str, namespace: str | None, name: str, group: str | None = None
    ) -> JSON | None:
        """The stored object (a snapshot: never mutate it; write through the API)."""
        return self._store[self.find_type(plural, group).key].get((namespace, name))

    def list_objects(
        self, plural: str, namespace: str | None = None, group: str | None = None
    ) -> list[JSON]:
        """Stored objects of a type, optionally in one namespace."""
        objs = self._store[self.find_type(plural, group).key]
        return [o for (ns, _), o in objs.items() if namespace is None or ns == namespace]

    def write_object(self, plural: str, obj: JSON, group: str | None = None) -> JSON:
        """Create an object, or merge into it, status included: how tests play the kubelet."""
        rtype = self.find_type(plural, group)
        meta = obj.get("metadata", {})
        current = self._store[rtype.key].get((meta.get("namespace"), meta["name"]))
        if current is None:
            created = self._create(rtype, meta.get("namespace"), _copy(obj), {}, keep_status=True)
            return created
        new = merge_patch(_copy(current), _copy(obj))
        return self._commit(rtype, current, new, status_write=True, main_write=True)

    async def wait_for_watches(self, plural: str, count: int = 1, timeout: float = 5.0) -> None:
        """Wait until some client watches a plural: kopf's ready flag fires before it does."""
        async with asyncio.timeout(timeout):
            while self.watch_requests.get(plural, 0) < count:
                await asyncio.sleep(0.01)

    def close_watches(self) -> None:
        """End every open watch stream, so the HTTP server can shut down at once."""
        for watchers in self._watchers.values():
            for watcher in watchers:
                watcher.queue.put_nowait(None)

    # -- HTTP entry --------------------------------------------------------------------------

    async def __call__(self, raw_request: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        await raw_request.read()
        try:
            request = await rendering.Request._parse(raw_request, id=len(self._requests))
        except ValueError:  # kmock cannot parse e.g. /api/v1/namespaces; we can
            request = rendering.Request(
                id=len(self._requests),
                raw_request=raw_request,
                url=raw_request.url,
                method=raw_request.method,
                params=dict(raw_request.query),
                headers=dict(raw_request.headers),
                body=await raw_request.read(),
            )
        self._requests.append(request)
        try:
            return await self._handle(request)
        except ApiError as e:
            return _json_response(e.body(), e.code)
        except Exception as e:
            if self._errors:
                self._errors[-1].append(e)
            body = ApiError(500, "InternalError", repr(e), {"traceback": traceback.format_exc()})
            return _json_response(body.body(), 500)

    async def _handle(self, request: rendering.Request) -> aiohttp.web.StreamResponse:
        if len(self._payloads) > self._builtin_payloads:
            with contextlib.suppress(NotImplementedError):
                return await self._handle_user(request)
        return await self._dispatch(request)

    async def _handle_user(self, request: rendering.Request) -> aiohttp.web.StreamResponse:
        """Let reactions the test declared with kmock's DSL answer first, by priority."""
        user = self._payloads[self._builtin_payloads :]
        for payload in sorted(user, key=lambda p: tuple(-x for x in p.priorities)):
            if request in payload._source and not payload._disabled.is_set():
                try:
                    return await payload(request)
                except rendering.ReactionMismatchError:
                    payload._disabled.set()
                except NotImplementedError:
                    pass
        raise NotImplementedError

    async def _dispatch(self, request: rendering.Request) -> aiohttp.web.StreamResponse:
        path = request.url.path
        raw = request._raw_request
        method = (raw.method if raw is not None else str(request.method)).upper()
        route = parse_route(path)
        if route is None or (route.plural is None and method == "GET"):
            return _json_response(self._discovery(path, route))
        rtype = self._types.get((route.group, route.version, route.plural or ""))
        if rtype is None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if route.subresource not in (None, "status") or (
            route.subresource == "status" and not rtype.status
        ):
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        namespace = route.namespace if rtype.namespaced else None
        params = dict(request.params)
        if route.name is None:
            if method == "GET" and params.get("watch") in ("true", "1"):
                return await self._watch(request, rtype, namespace, None, params)
            if method == "GET":
                listing = self._list(rtype, namespace, params)
                if wants_table(request.headers.get("Accept")):
                    return _json_response(self._table(rtype, listing["items"], params))
                return _json_response(listing)
            if method == "POST":
                return _json_response(
                    self._create(rtype, namespace, _json_body(request), params), 201
                )
            if method == "DELETE":
                return _json_response(self._delete_collection(rtype, namespace, params))
            raise ApiError(405, "MethodNotAllowed", f"{method} is not allowed on a collection")
        key = (namespace, route.name)
        if method == "GET" and params.get("watch") in ("true", "1"):
            return await self._watch(request, rtype, namespace, route.name, params)
        current = self._store[rtype.key].get(key)
        if current is None:
            raise self._not_found(rtype, route.name)
        status_write = route.subresource == "status"
        if method == "GET" and not status_write and wants_table(request.headers.get("Accept")):
            return _json_response(self._table(rtype, [current], params))
        if method == "GET":
            return _json_response(current)
        if method == "PUT":
            new = self._replacement(rtype, current, _json_body(request), route.name)
        elif method == "PATCH":
            new = self._patched(current, request)
        elif method == "DELETE":
            return _json_response(self._delete(rtype, current))
        else:
            raise ApiError(405, "MethodNotAllowed", f"{method} is not allowed on an object")
        sent_rv = (new.get("metadata") or {}).get("resourceVersion")
        if sent_rv and sent_rv != current["metadata"]["resourceVersion"]:
            raise self._conflict(rtype, route.name)
        result = self._commit(
            rtype,
            current,
            new,
            status_write=status_write,
            main_write=not status_write,
            dry_run=bool(params.get("dryRun")),
        )
        return _json_response(result)

    def _table(self, rtype: ResourceType, objs: list[JSON], params: dict[str, str]) -> JSON:
        include = params.get("includeObject")
        return render_table(objs, rtype.printer_columns, str(self._rv), include)

    # -- errors ------------------------------------------------------------------------------

    @staticmethod
    def _not_found(rtype: ResourceType, name: str) -> ApiError:
        details = {"name": name, "group": rtype.group, "kind": rtype.plural}
        label = f"{rtype.plural}.{rtype.group}" if rtype.group else rtype.plural
        return ApiError(404, "NotFound", f'{label} "{name}" not found', details)

    @staticmethod
    def _conflict(rtype: ResourceType, name: str) -> ApiError:
        label = f"{rtype.plural}.{rtype.group}" if rtype.group else rtype.plural
        message = (
            f'Operation cannot be fulfilled on {label} "{name}": the object has been modified; '
            "please apply your changes to the latest version and try again"
        )
        details = {"name": name, "group": rtype.group, "kind": rtype.plural}
        return ApiError(409, "Conflict", message, details)

    @staticmethod
    def _invalid(rtype: ResourceType, name: str, causes: list[JSON]) -> ApiError:
        label = f"{rtype.kind}.{rtype.group}" if rtype.group else rtype.kind
        texts = [f"{c['field']}: {c['message']}" for c in causes]
        joined = texts[0] if len(texts) == 1 else "[" + ", ".join(texts) + "]"
        details = {"name": name, "group": rtype.group, "kind": rtype.kind, "causes": causes}
        return ApiError(422, "Invalid", f'{label} "{name}" is invalid: {joined}', details)

    # -- writes ------------------------------------------------------------------------------

    def _create(
        self,
        rtype: ResourceType,
        namespace: str | None,
        body: Any,
        params: dict[str, str],
        *,
        keep_status: bool = False,
    ) -> JSON:
        if not isinstance(body, dict):
            raise ApiError(400, "BadRequest", "the request body must be a JSON object")
        obj = _copy(body)
        meta = obj.setdefault("metadata", {})
        if rtype.namespaced:
            body_ns = meta.get("namespace")
            if namespace and body_ns and body_ns != namespace:
                raise ApiError(
                    400,
                    "BadRequest",
                    "the namespace of the provided object does not match the namespace sent on "
                    "the request",
                )
            namespace = namespace or body_ns
            if not namespace:
                raise ApiError(400, "BadRequest", "a namespace is required for this resource")
            meta["namespace"] = namespace
        else:
            meta.pop("namespace", None)
            namespace = None
        store = self._store[rtype.key]
        if not meta.get("name"):
            prefix = meta.get("generateName")
            if not prefix:
                cause = {"reason": "FieldValueRequired", "message": "Required value", "field": ""}
                cause["field"] = "metadata.name"
                raise self._invalid(rtype, "", [cause])
            name = prefix + "".join(random.choices(_GENERATE_ALPHABET, k=5))
            while (namespace, name) in store:
                name = prefix + "".join(random.choices(_GENERATE_ALPHABET, k=5))
            meta["name"] = name
        name = meta["name"]
        if not _NAME_RE.match(name) or len(name) > 253:
            cause = {"reason": "FieldValueInvalid", "field": "metadata.name"}
            cause["message"] = f'Invalid value: "{name}": must be a lowercase RFC 1123 subdomain'
            raise self._invalid(rtype, name, [cause])
        if (namespace, name) in store:
            label = f"{rtype.plural}.{rtype.group}" if rtype.group else rtype.plural
            details = {"name": name, "group": rtype.group, "kind": rtype.plural}
            raise ApiError(409, "AlreadyExists", f'{label} "{name}" already exists', details)
        obj["apiVersion"] = rtype.api_version
        obj["kind"] = rtype.kind
        for server_field in ("deletionTimestamp", "deletionGracePeriodSeconds", "resourceVersion"):
            meta.pop(server_field, None)
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = _now()
        meta["generation"] = 1
        if rtype.status and not keep_status:
            obj.pop("status", None)
            if rtype.key == ("", "v1", "pods"):
                obj["status"] = {"phase": "Pending"}
        if rtype.key == CRD_KEY:
            obj["status"] = self._crd_status(obj)
        obj = self._validated(rtype, obj)
        if params.get("dryRun"):
            return obj
        self._rv += 1
        meta = obj["metadata"]
        meta["resourceVersion"] = str(self._rv)
        store[(namespace, name)] = obj
        if rtype.key == CRD_KEY:
            self._register_crd(obj)
        self._publish(rtype, "ADDED", obj, None)
        return obj

    @staticmethod
    def _crd_status(crd: JSON) -> JSON:
        now = _now()
        spec = crd.get("spec", {})
        conditions = [
            {"type": t, "status": "True", "reason": r, "message": m, "lastTransitionTime": now}
            for t, r, m in [
                ("NamesAccepted", "NoConflicts", "no conflicts found"),
                ("Established", "InitialNamesAccepted", "the initial names have been accepted"),
            ]
        ]
        stored = [v["name"] for v in spec.get("versions", []) if v.get("storage")]
        return {
            "acceptedNames": spec.get("names", {}),
            "conditions": conditions,
            "storedVersions": stored,
        }

    def _validated(self, rtype: ResourceType, obj: JSON) -> JSON:
        """Prune, default and validate a custom resource against its structural schema."""
        if rtype.schema is None:
            return obj
        obj = prune_and_default(obj, rtype.schema, root=True)
        if rtype.validator is not None:
            causes = validation_causes(obj, rtype.validator)
            if causes:
                raise self._invalid(rtype, obj["metadata"].get("name", ""), causes)
        return obj

    def _replacement(self, rtype: ResourceType, current: JSON, body: Any, name: str) -> JSON:
        if not isinstance(body, dict):
            raise ApiError(400, "BadRequest", "the request body must be a JSON object")
        new = _copy(body)
        meta = new.setdefault("metadata", {})
        if meta.get("name", name) != name:
            raise ApiError(
                400, "BadRequest", "the name of the object does not match the name on the URL"
            )
        if not meta.get("resourceVersion"):
            # An unconditional PUT: the API accepts it for most kinds.
            meta["resourceVersion"] = current["metadata"]["resourceVersion"]
        return new

    def _patched(self, current: JSON, request: rendering.Request) -> JSON:
        ctype = (request.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        try:
            patch = json.loads(request.body or b"null")
        except ValueError as e:
            raise ApiError(400, "BadRequest", f"invalid JSON in the patch: {e}") from e
        if ctype == "application/json-patch+json":
            if not isinstance(patch, list):
                raise ApiError(400, "BadRequest", "a JSON patch must be a list of operations")
            try:
                return jsonpatch.apply_patch(_copy(current), patch)
            except jsonpatch.JsonPatchTestFailed as e:
                raise ApiError(422, "Invalid", f"the server rejected our request: {e}") from e
            except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as e:
                raise ApiError(422, "Invalid", f"the server rejected our request: {e}") from e
        if ctype in ("application/merge-patch+json", "application/strategic-merge-patch+json"):
            if not isinstance(patch, dict):
                raise ApiError(400, "BadRequest", "a merge patch must be a JSON object")
            return merge_patch(_copy(current), patch)
        if ctype == "application/apply-patch+yaml":
            raise ApiError(415, "UnsupportedMediaType", "server-side apply is not emulated")
        raise ApiError(
            415,
            "UnsupportedMediaType",
            f"the body of the request was in an unknown format: {ctype}",
        )

    def _commit(
        self,
        rtype: ResourceType,
        current: JSON,
        new: JSON,
        *,
        status_write: bool,
        main_write: bool,
        dry_run: bool = False,
    ) -> JSON:
        """Store an update: keep server-owned metadata, split status, bump generation and rv."""
        if not isinstance(new, dict):
            raise ApiError(400, "BadRequest", "the object must be a JSON object")
        cur_meta = current["metadata"]
        if rtype.status and not main_write:
            merged = _copy(current)  # a /status write changes status only
            if "status" in new:
                merged["status"] = new["status"]
            else:
                merged.pop("status", None)
            new = merged
        elif rtype.status and not status_write:
            new = _without(new, "status")  # a main-resource write ignores status
            if "status" in current:
                new["status"] = current["status"]
        meta = new.setdefault("metadata", {})
        if not isinstance(meta, dict):
            raise ApiError(400, "BadRequest", "metadata must be an object")
        for kept in ("name", "namespace", "uid", "creationTimestamp", "deletionTimestamp"):
            if kept in cur_meta:
                meta[kept] = cur_meta[kept]
            else:
                meta.pop(kept, None)
        if "deletionGracePeriodSeconds" in cur_meta:
            meta["deletionGracePeriodSeconds"] = cur_meta["deletionGracePeriodSeconds"]
        new["apiVersion"], new["kind"] = rtype.api_version, rtype.kind
        meta["resourceVersion"] = cur_meta["resourceVersion"]
        meta["generation"] = cur_meta.get("generation", 1)
        new = self._validated(rtype, new)
        meta = new["metadata"]
        # With a status subresource, status is not "spec"; without one, it counts as spec.
        ignored = ("metadata", "apiVersion", "kind", *(("status",) if rtype.status else ()))
        if _without(new, *ignored) != _without(current, *ignored):
            meta["generation"] = cur_meta.get("generation", 1) + 1
        if new == current:
            return current  # a no-op write is not stored and emits no event, as in the API
        if dry_run:
            return new  # validated, defaulted and pruned, but neither stored nor announced
        self._rv += 1
        meta["resourceVersion"] = str(self._rv)
        key = (meta.get("namespace"), meta["name"])
        if meta.get("deletionTimestamp") and not meta.get("finalizers"):
            self._remove(rtype, key, new)  # the last finalizer is gone: the object goes
            return new
        self._store[rtype.key][key] = new
        if rtype.key == CRD_KEY:
            self._register_crd(new)
        self._publish(rtype, "MODIFIED", new, current)
        return new

    def _delete(self, rtype: ResourceType, current: JSON) -> JSON:
        meta = current["metadata"]
        if meta.get("finalizers"):
            if meta.get("deletionTimestamp"):
                return current
            new = _copy(current)
            new["metadata"]["deletionTimestamp"] = _now()
            new["metadata"]["deletionGracePeriodSeconds"] = 0
            self._rv += 1
            new["metadata"]["resourceVersion"] = str(self._rv)
            self._store[rtype.key][(meta.get("namespace"), meta["name"])] = new
            self._publish(rtype, "MODIFIED", new, current)
            return new
        self._rv += 1
        gone = _copy(current)
        gone["metadata"]["resourceVersion"] = str(self._rv)
        self._remove(rtype, (meta.get("namespace"), meta["name"]), gone)
        return gone

    def _remove(self, rtype: ResourceType, key: ObjKey, last: JSON) -> None:
        """Drop an object whose final state is `last`, then collect its orphans."""
        self._store[rtype.key].pop(key, None)
        self._publish(rtype, "DELETED", last, None)
        if rtype.key == CRD_KEY:
            self._unregister_crd(last)
        if not self._gc_pending:  # one sweep serves a burst of deletions
            self._gc_pending = True
            asyncio.get_running_loop().call_soon(self._collect_garbage)

    def _collect_garbage(self) -> None:
        """Delete dependents none of whose owners exist any more (background propagation)."""
        self._gc_pending = False
        alive = {
            obj["metadata"].get("uid") for objs in self._store.values() for obj in objs.values()
        }
        for key, objs in list(self._store.items()):
            rtype = self._types.get(key)
            if rtype is None:
                continue
            for obj in list(objs.values()):
                owners = obj["metadata"].get("ownerReferences") or []
                orphan = owners and not any(ref.get("uid") in alive for ref in owners)
                if orphan and not obj["metadata"].get("deletionTimestamp"):
                    self._delete(rtype, obj)

    def _delete_collection(
        self, rtype: ResourceType, namespace: str | None, params: dict[str, str]
    ) -> JSON:
        listing = self._list(rtype, namespace, params)
        for obj in listing["items"]:
            current = self._store[rtype.key].get(
                (obj["metadata"].get("namespace"), obj["metadata"]["name"])
            )
            if current is not None:
                self._delete(rtype, current)
        return listing

    # -- reads -------------------------------------------------------------------------------

    def _watcher(
        self, rtype: ResourceType, namespace: str | None, name: str | None, params: dict[str, str]
    ) -> _Watcher:
        try:
            labels = parse_label_selector(params.get("labelSelector"))
            fields = parse_field_selector(params.get("fieldSelector"), rtype.plural)
        except SelectorError as e:
            raise ApiError(400, "BadRequest", str(e)) from e
        return _Watcher(namespace, name, labels, fields)

    def _list(self, rtype: ResourceType, namespace: str | None, params: dict[str, str]) -> JSON:
        matcher = self._watcher(rtype, namespace, None, params)
        items = [obj for obj in self._store[rtype.key].values() if matcher.matches(obj)]
        return {
            "kind": f"{rtype.kind}List",
            "apiVersion": rtype.api_version,
            "metadata": {"resourceVersion": str(self._rv)},
            "items": items,
        }

    def _publish(self, rtype: ResourceType, kind: str, obj: JSON, old: JSON | None) -> None:
        rv = int(obj["metadata"]["resourceVersion"])
        self._history[rtype.key].append((rv, kind, obj, old))
        self._history_rvs[rtype.key].append(rv)
        for watcher in self._watchers[rtype.key]:
            event = watcher.translate(kind, obj, old)
            if event is not None:
                watcher.queue.put_nowait(event)

    async def _watch(
        self,
        request: rendering.Request,
        rtype: ResourceType,
        namespace: str | None,
        name: str | None,
        params: dict[str, str],
    ) -> aiohttp.web.StreamResponse:
        watcher = self._watcher(rtype, namespace, name, params)
        since = params.get("resourceVersion")
        # Snapshot and subscription happen with no await in between: no event can slip through.
        initial: Iterable[JSON]
        if not since or since == "0":
            objs = self._store[rtype.key].values()
            initial = [{"type": "ADDED", "object": o} for o in objs if watcher.matches(o)]
        else:
            try:
                since_rv = int(since)
            except ValueError as e:
                raise ApiError(400, "BadRequest", f"invalid resourceVersion {since!r}") from e
            start = bisect.bisect_right(self._history_rvs[rtype.key], since_rv)
            replay = self._history[rtype.key][start:]
            events = (watcher.translate(k, o, old) for _, k, o, old in replay)
            initial = [e for e in events if e is not None]
        self._watchers[rtype.key].append(watcher)
        self.watch_requests[rtype.plural] = self.watch_requests.get(rtype.plural, 0) + 1
        timeout = float(params.get("timeoutSeconds") or 0) or None
        raw = request._raw_request
        assert raw is not None
        response = aiohttp.web.StreamResponse(status=200)
        response.content_type = "application/json"
        try:
            await response.prepare(raw)  # type: ignore[arg-type]
            for event in initial:
                await response.write(json.dumps(event).encode() + b"\n")
            await self._stream(raw, response, watcher, timeout)
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            with contextlib.suppress(ValueError):
                self._watchers.get(rtype.key, []).remove(watcher)
        with contextlib.suppress(ConnectionResetError, RuntimeError):
            await response.write_eof()
        return response

    @staticmethod
    async def _stream(
        raw: aiohttp.web.BaseRequest,
        response: aiohttp.web.StreamResponse,
        watcher: _Watcher,
        timeout: float | None,
    ) -> None:
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while True:
            remaining = 1.0 if deadline is None else min(1.0, deadline - loop.time())
            if remaining <= 0:
                return
            try:
                event = await asyncio.wait_for(watcher.queue.get(), remaining)
            except TimeoutError:
                if raw.transport is None or raw.transport.is_closing():
                    return  # the client went away
                continue
            if event is None:
                return
            await response.write(json.dumps(event).encode() + b"\n")

    # -- discovery ---------------------------------------------------------------------------

    def _discovery(self, path: str, route: _Route | None) -> JSON:
        path = "/" + path.strip("/")
        if path == "/":
            paths = {"/api", "/api/v1", "/apis", "/version"}
            for rtype in self._types.values():
                if rtype.group:
                    paths |= {f"/apis/{rtype.group}", f"/apis/{rtype.group}/{rtype.version}"}
            return {"paths": sorted(paths)}
        if path == "/version":
            return {
                "major": "1",
                "minor": "32",
                "gitVersion": "v1.32.0-emulated",
                "platform": "linux/amd64",
            }
        if path == "/api":
            return {
                "kind": "APIVersions",
                "versions": ["v1"],
                "serverAddressByClientCIDRs": [
                    {"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}
                ],
            }
        groups = self._groups()
        if path == "/apis":
            return {
                "kind": "APIGroupList",
                "apiVersion": "v1",
                "groups": [self._group_doc(g, vs) for g, vs in groups.items()],
            }
        if route is not None and route.group and path == f"/apis/{route.group}":
            if route.group not in groups:
                raise ApiError(404, "NotFound", "the server could not find the requested resource")
            return {
                "kind": "APIGroup",
                "apiVersion": "v1",
                **self._group_doc(route.group, groups[route.group]),
            }
        if route is not None and route.plural is None:
            types = [
                t
                for t in self._types.values()
                if t.group == route.group and t.version == route.version
            ]
            if not types:
                raise ApiError(404, "NotFound", "the server could not find the requested resource")
            gv = f"{route.group}/{route.version}" if route.group else route.version
            return {
                "kind": "APIResourceList",
                "apiVersion": "v1",
                "groupVersion": gv,
                "resources": [entry for t in types for entry in t.describe()],
            }
        raise ApiError(404, "NotFound", "the server could not find the requested resource")

    def _groups(self) -> dict[str, list[str]]:
        groups: dict[str, list[str]] = {}
        for rtype in self._types.values():
            if rtype.group and rtype.version not in groups.setdefault(rtype.group, []):
                groups[rtype.group].append(rtype.version)
        return groups

    @staticmethod
    def _group_doc(group: str, versions: list[str]) -> JSON:
        docs = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
        return {"name": group, "versions": docs, "preferredVersion": docs[0]}


@contextlib.asynccontextmanager
async def serve_emulator() -> AsyncIterator[FilledEmulator]:
    """Run a FilledEmulator on a random localhost port; its base URL is ``emu.url``."""
    emu = FilledEmulator()
    async with emu, kmock.Server(emu):
        try:
            yield emu
        finally:
            emu.close_watches()
            await asyncio.sleep(0)
