"""The app factory gives every service health, readiness, metrics and offline docs."""

import re
from typing import ClassVar

import httpx
from asgi_lifespan import LifespanManager
from fastapi import APIRouter
from pydantic_settings import SettingsConfigDict
from sqlalchemy import text

from paygate_common.app import create_service_app
from paygate_common.db import SessionDep
from paygate_common.errors import NotFound
from paygate_common.settings import ServiceSettings


class DemoSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="DEMO_SERVICE_")
    service_name: ClassVar[str] = "demo-service"
    default_schema: ClassVar[str] = "demo"


router = APIRouter()


@router.get("/things/{thing_id}")
async def read_thing(thing_id: int, session: SessionDep) -> dict[str, int]:
    value = (
        await session.execute(text("SELECT CAST(:v AS integer)"), {"v": thing_id})
    ).scalar_one()
    if value == 404:
        raise NotFound("no such thing", code="thing_not_found")
    return {"id": value}


def build(database_url: str, redis_url: str):  # type: ignore[no-untyped-def]
    settings = DemoSettings(database_url=database_url, redis_url=redis_url, log_json=False)
    return create_service_app(settings, title="Demo", routers=[router])


async def test_ready_when_database_and_redis_answer(postgres, redis_server) -> None:  # type: ignore[no-untyped-def]
    app = build(postgres.create_database(), redis_server.url)
    async with (
        LifespanManager(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client,
    ):
        assert (await client.get("/health")).json()["status"] == "ok"
        ready = await client.get("/ready")
        assert ready.status_code == 200
        assert ready.json()["checks"] == {"database": "ok", "redis": "ok"}
        assert (await client.get("/things/7")).json() == {"id": 7}
        missing = await client.get("/things/404")
        assert missing.status_code == 404 and missing.json()["code"] == "thing_not_found"
        metrics = (await client.get("/metrics")).text
        assert 'route="/things/{thing_id}"' in metrics
        assert "paygate_dependency_up" in metrics


async def test_not_ready_when_redis_is_unreachable(postgres) -> None:  # type: ignore[no-untyped-def]
    app = build(postgres.create_database(), "redis://127.0.0.1:1/0")
    async with (
        LifespanManager(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client,
    ):
        ready = await client.get("/ready")
        assert ready.status_code == 503
        assert ready.json()["checks"]["redis"].startswith("down")
        assert ready.json()["checks"]["database"] == "ok"
        # Liveness stays green: a dependency outage is not a reason to restart the process.
        assert (await client.get("/health")).status_code == 200


async def test_docs_are_served_without_any_cdn(postgres, redis_server) -> None:  # type: ignore[no-untyped-def]
    app = build(postgres.create_database(), redis_server.url)
    async with (
        LifespanManager(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client,
    ):
        page = (await client.get("/docs")).text
        hosts = set(re.findall(r"(?:src|href)=[\"'](https?://[^/\"']+)", page))
        assert hosts == set(), hosts
        assets = re.findall(r"(?:src|href)=[\"'](/[^\"']+)", page)
        assert assets
        for asset in assets:
            assert (await client.get(asset)).status_code == 200, asset
        spec = (await client.get("/openapi.json")).json()
        assert "/things/{thing_id}" in spec["paths"]


async def test_unit_of_work_is_committed_before_the_response(postgres, redis_server) -> None:  # type: ignore[no-untyped-def]
    """A client holding a 201 can read what it created at once: the commit precedes the answer."""
    database_url = postgres.create_database()
    app = build(database_url, redis_server.url)
    seen_committed: list[bool] = []
    probe = APIRouter()

    @probe.post("/notes/{note}", status_code=201)
    async def add_note(note: str, session: SessionDep) -> dict[str, str]:
        await session.execute(text("CREATE SCHEMA IF NOT EXISTS demo"))
        await session.execute(text("CREATE TABLE IF NOT EXISTS notes (body text)"))
        await session.execute(text("INSERT INTO notes VALUES (:b)"), {"b": note})
        return {"note": note}

    app.include_router(probe)

    async def count_notes() -> int:
        async with app.state.engine.connect() as conn:
            exists = (await conn.execute(text("SELECT to_regclass('notes')"))).scalar_one()
            if exists is None:
                return 0
            return int((await conn.execute(text("SELECT count(*) FROM notes"))).scalar_one())

    async def watch(message):  # type: ignore[no-untyped-def]
        if message["type"] == "http.response.start":
            seen_committed.append(await count_notes() == 1)

    async with LifespanManager(app):
        inner = app

        async def recording_app(scope, receive, send):  # type: ignore[no-untyped-def]
            async def send_and_check(message):  # type: ignore[no-untyped-def]
                await watch(message)
                await send(message)

            await inner(scope, receive, send_and_check)

        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=recording_app), base_url="http://t"
        ) as client:
            r = await client.post("/notes/first")
    assert r.status_code == 201
    assert seen_committed == [True]


class _CountingLoop:
    """A worker that counts its runs and crashes on the first, to show the kit restarts it."""

    name = "demo-loop"

    def __init__(self) -> None:
        import asyncio

        self.runs = 0
        self.stopped = asyncio.Event()
        self.second_run = asyncio.Event()

    async def run(self) -> None:
        self.runs += 1
        if self.runs == 1:
            raise RuntimeError("first run fails")
        self.second_run.set()
        await self.stopped.wait()

    async def stop(self) -> None:
        self.stopped.set()


async def test_the_kit_supervises_workers_for_the_apps_lifetime(postgres, redis_server) -> None:  # type: ignore[no-untyped-def]
    import asyncio

    loop = _CountingLoop()
    settings = DemoSettings(
        database_url=postgres.create_database(), redis_url=redis_server.url, log_json=False
    )
    app = create_service_app(settings, title="Demo", workers=lambda app: [loop])
    async with LifespanManager(app):
        # restarted after its crash (supervise backs off ~1 s), then running until shutdown
        await asyncio.wait_for(loop.second_run.wait(), 30)
        assert app.state.workers == [loop]
        assert not loop.stopped.is_set()
    assert loop.stopped.is_set() and loop.runs == 2
