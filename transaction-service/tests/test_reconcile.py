"""The reconciliation command finds nothing on healthy books and reports a payment that differs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from typing import Any

from paygate_common.events import PaymentStatus

S = PaymentStatus


def run_command(database_url: str) -> tuple[int, dict[str, Any]]:
    env = {**os.environ, "TRANSACTION_SERVICE_DATABASE_URL": database_url, "LOG_JSON": "false"}
    result = subprocess.run(
        [sys.executable, "-m", "transaction_service.reconcile"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.stdout, result.stderr
    return result.returncode, json.loads(result.stdout)


async def test_reconcile_reports_clean_books_then_a_payment_that_differs(
    start_ledger: Any, make_payment_event: Any
) -> None:
    async with start_ledger() as ledger:
        merchant, paid, refunded = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
        await ledger.apply(
            [
                make_payment_event(
                    payment_id=paid,
                    user_id=merchant,
                    status=S.SUCCEEDED,
                    amount=5_000,
                    amount_captured=5_000,
                ),
                make_payment_event(
                    payment_id=refunded,
                    user_id=merchant,
                    status=S.SUCCEEDED,
                    amount=2_000,
                    amount_captured=2_000,
                ),
                make_payment_event(
                    payment_id=refunded,
                    user_id=merchant,
                    status=S.REFUNDED,
                    amount=2_000,
                    amount_captured=2_000,
                    amount_refunded=2_000,
                ),
            ]
        )
        status, report = run_command(ledger.settings.database_url)
        assert status == 0, report
        assert report["ok"] is True and report["payments_with_differences"] == []
        assert report["trial_balance"] == [{"currency": "usd", "debits": 9_000, "credits": 9_000}]

        # payment-service says it refunded 1.00 of `paid` but no event the ledger posted said so
        # (here: written behind the ledger's back, as a lost event would leave it).
        async with ledger.owner_engine.begin() as conn:
            from sqlalchemy import text

            await conn.execute(
                text("UPDATE transactions SET reported_refunded = 100 WHERE id = :p"), {"p": paid}
            )
        status, report = run_command(ledger.settings.database_url)
        assert status == 1
        [difference] = report["payments_with_differences"]
        assert difference["payment_id"] == str(paid)
        assert (difference["reported_refunded"], difference["ledger_refunded"]) == (100, 0)
