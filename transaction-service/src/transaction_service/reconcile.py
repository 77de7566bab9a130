"""`python -m transaction_service.reconcile`: report where the ledger and the payments disagree.

Exit status 0 when the books reconcile, 1 when any difference is found (one JSON document on
stdout either way, so a cron job can alert on the status and keep the report).
"""

from __future__ import annotations

import argparse
import asyncio
import sys

import orjson

from paygate_common.db import create_engine, create_sessionmaker, unit_of_work
from transaction_service.domain.reconciliation import reconcile
from transaction_service.main import run_as_role
from transaction_service.settings import Settings


async def run(settings: Settings) -> int:
    engine = create_engine(settings, pool_size=1, max_overflow=0)
    if settings.db_role:
        run_as_role(engine, settings.db_role)
    try:
        async with unit_of_work(create_sessionmaker(engine)) as session:
            report = await reconcile(session=session)
    finally:
        await engine.dispose()
    document = {
        "ok": report.ok,
        "payments_with_differences": report.payments,
        "unbalanced_entries": report.unbalanced_entries,
        "account_drift": report.account_drift,
        "trial_balance": report.trial_balance,
    }
    sys.stdout.write(
        orjson.dumps(document, option=orjson.OPT_INDENT_2, default=str).decode() + "\n"
    )
    return 0 if report.ok else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m transaction_service.reconcile",
        description="Hold the ledger against payment-service's reported totals and check the books.",
    )
    parser.add_argument("--database-url", help="defaults to TRANSACTION_SERVICE_DATABASE_URL")
    args = parser.parse_args(argv)
    settings = Settings(**({"database_url": args.database_url} if args.database_url else {}))
    return asyncio.run(run(settings))


if __name__ == "__main__":
    sys.exit(main())
