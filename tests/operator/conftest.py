"""The operator's scenario tests: an emulated cluster, and the operator running against it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest_asyncio

from tests.operator.harness import Cluster, RunningOperator
from tests.support.emulator import serve_emulator


@pytest_asyncio.fixture
async def cluster() -> AsyncIterator[Cluster]:
    async with serve_emulator() as emu:
        cluster = Cluster(emu)
        try:
            yield cluster
        finally:
            cluster.close()


@pytest_asyncio.fixture
async def operator(cluster: Cluster) -> AsyncIterator[RunningOperator]:
    running = await cluster.start_operator()
    try:
        yield running
    finally:
        await asyncio.to_thread(running.stop)
