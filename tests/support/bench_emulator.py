"""Measure the filled-in emulator's request rates (run: python -m tests.support.bench_emulator)."""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any

import aiohttp
import kubernetes.client

from tests.support.emulator import serve_emulator
from tests.support.samples import BASE, GROUP, PLURAL, VERSION, WIDGET_CRD, widget


async def _rate(count: int, make: Any) -> float:
    start = time.perf_counter()
    for i in range(count):
        await make(i)
    return count / (time.perf_counter() - start)


async def bench(count: int) -> dict[str, float]:
    """Sequential requests, because a kopf operator's per-object calls are sequential too."""
    async with serve_emulator() as emu, aiohttp.ClientSession(base_url=emu.url) as http:
        emu.add_crd(WIDGET_CRD)

        async def create(i: int) -> None:
            async with http.post(BASE, json=widget(f"w{i}")) as resp:
                assert resp.status == 201, await resp.text()

        async def patch(i: int) -> None:
            body = json.dumps({"status": {"phase": "Seen", "n": i}})
            headers = {"Content-Type": "application/merge-patch+json"}
            async with http.patch(f"{BASE}/w{i}/status", data=body, headers=headers) as resp:
                assert resp.status == 200, await resp.text()

        results = {
            "http_creates_per_second": await _rate(count, create),
            "http_status_patches_per_second": await _rate(count, patch),
        }
        start = time.perf_counter()
        async with http.get(BASE) as resp:
            items = (await resp.json())["items"]
        results["http_list_ms"] = (time.perf_counter() - start) * 1000
        assert len(items) == count

        config = kubernetes.client.Configuration()
        config.host = str(emu.url).rstrip("/")
        with kubernetes.client.ApiClient(config) as api:
            custom = kubernetes.client.CustomObjectsApi(api)

            def client_creates() -> float:
                start = time.perf_counter()
                for i in range(count):
                    body = widget(f"c{i}")
                    custom.create_namespaced_custom_object(GROUP, VERSION, "ns2", PLURAL, body)
                return count / (time.perf_counter() - start)

            results["client_creates_per_second"] = await asyncio.to_thread(client_creates)
        return {key: round(value, 1) for key, value in results.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=500)
    args = parser.parse_args()
    print(json.dumps({"objects": args.count, **asyncio.run(bench(args.count))}))


if __name__ == "__main__":
    main()
