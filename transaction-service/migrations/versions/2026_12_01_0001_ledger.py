"""Ledger schema: accounts, insert-only balanced journal, per-payment transactions, limits, config.

The database itself enforces the ledger's rules, so no code path (nor an operator at a psql
prompt) can break them:
- every journal entry's lines sum to zero per currency (a DEFERRABLE INITIALLY DEFERRED
  constraint trigger, checked at commit), and an entry without lines is refused;
- journal entries and lines are insert-only (a trigger refuses UPDATE, DELETE and TRUNCATE, and
  the service's role `paygate_ledger` is granted only SELECT and INSERT on them);
- account totals are kept by a SECURITY DEFINER trigger on the lines (the service's role cannot
  UPDATE accounts), and an account flagged `must_not_go_negative` is held by a CHECK constraint;
- a consumed event produces at most one entry (unique `event_id`).

Revision ID: 0001
Revises:
Create Date: 2026-12-01
"""

from collections.abc import Sequence

from alembic import op

from paygate_common.outbox import create_outbox_tables, drop_outbox_tables

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ROLE = "paygate_ledger"  # transaction_service.settings.LEDGER_ROLE (migrations import no app code)

TABLES = """
CREATE TABLE ledger_accounts (
    id BIGINT GENERATED ALWAYS AS IDENTITY,
    kind TEXT NOT NULL,
    owner TEXT NOT NULL,
    currency VARCHAR(3) NOT NULL,
    normal_balance TEXT NOT NULL,
    must_not_go_negative BOOLEAN NOT NULL,
    debits_posted BIGINT NOT NULL DEFAULT 0,
    credits_posted BIGINT NOT NULL DEFAULT 0,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT pk_ledger_accounts PRIMARY KEY (id),
    CONSTRAINT uq_ledger_accounts_kind_owner_currency UNIQUE (kind, owner, currency),
    CONSTRAINT ck_ledger_accounts_normal_balance CHECK (normal_balance IN ('debit', 'credit')),
    CONSTRAINT ck_ledger_accounts_totals_not_negative
        CHECK (debits_posted >= 0 AND credits_posted >= 0),
    -- TigerBeetle's debits_must_not_exceed_credits / credits_must_not_exceed_debits.
    CONSTRAINT ck_ledger_accounts_never_negative CHECK (
        NOT must_not_go_negative
        OR (normal_balance = 'credit' AND debits_posted <= credits_posted)
        OR (normal_balance = 'debit' AND credits_posted <= debits_posted)
    )
);

CREATE TABLE journal_entries (
    id BIGINT GENERATED ALWAYS AS IDENTITY,
    event_id UUID,
    kind TEXT NOT NULL,
    payment_id UUID,
    user_id UUID,
    currency VARCHAR(3),
    captured BIGINT NOT NULL DEFAULT 0,
    refunded BIGINT NOT NULL DEFAULT 0,
    fees BIGINT NOT NULL DEFAULT 0,
    reverses_entry_id BIGINT,
    description TEXT,
    posted_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT pk_journal_entries PRIMARY KEY (id),
    CONSTRAINT uq_journal_entries_event_id UNIQUE (event_id),
    CONSTRAINT fk_journal_entries_reverses FOREIGN KEY (reverses_entry_id)
        REFERENCES journal_entries (id),
    CONSTRAINT ck_journal_entries_kind CHECK (kind IN ('payment', 'correction'))
);
CREATE INDEX ix_journal_entries_payment ON journal_entries (payment_id, id);
CREATE INDEX ix_journal_entries_user_posted ON journal_entries (user_id, posted_at);

CREATE TABLE journal_lines (
    id BIGINT GENERATED ALWAYS AS IDENTITY,
    entry_id BIGINT NOT NULL,
    account_id BIGINT NOT NULL,
    currency VARCHAR(3) NOT NULL,
    amount BIGINT NOT NULL,
    CONSTRAINT pk_journal_lines PRIMARY KEY (id),
    CONSTRAINT fk_journal_lines_entry FOREIGN KEY (entry_id) REFERENCES journal_entries (id),
    CONSTRAINT fk_journal_lines_account FOREIGN KEY (account_id) REFERENCES ledger_accounts (id),
    -- positive = debit, negative = credit; a zero line says nothing
    CONSTRAINT ck_journal_lines_amount_not_zero CHECK (amount <> 0)
);
CREATE INDEX ix_journal_lines_entry ON journal_lines (entry_id);
CREATE INDEX ix_journal_lines_account ON journal_lines (account_id);

CREATE SEQUENCE transactions_version_seq;
CREATE TABLE transactions (
    id UUID NOT NULL,
    user_id UUID NOT NULL,
    order_id UUID,
    provider TEXT NOT NULL,
    currency VARCHAR(3) NOT NULL,
    capture_method TEXT NOT NULL,
    amount BIGINT NOT NULL,
    status TEXT NOT NULL,
    phase TEXT NOT NULL,
    amount_pending BIGINT NOT NULL DEFAULT 0,
    amount_captured BIGINT NOT NULL DEFAULT 0,
    amount_refunded BIGINT NOT NULL DEFAULT 0,
    fee BIGINT NOT NULL DEFAULT 0,
    fee_refunded BIGINT NOT NULL DEFAULT 0,
    fee_basis_points INTEGER,
    fee_fixed BIGINT,
    fee_returned_on_refund BOOLEAN,
    -- The highest totals payment-service reported (what reconciliation holds the ledger to).
    reported_captured BIGINT NOT NULL DEFAULT 0,
    reported_refunded BIGINT NOT NULL DEFAULT 0,
    version BIGINT NOT NULL DEFAULT nextval('transactions_version_seq'),
    last_event_at TIMESTAMPTZ,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT pk_transactions PRIMARY KEY (id),
    CONSTRAINT ck_transactions_phase CHECK (phase IN ('open', 'authorized', 'settled')),
    CONSTRAINT ck_transactions_amounts CHECK (
        amount_pending >= 0 AND amount_captured >= 0
        AND amount_refunded BETWEEN 0 AND amount_captured
        AND fee BETWEEN 0 AND amount_captured AND fee_refunded BETWEEN 0 AND fee
    )
);
CREATE INDEX ix_transactions_user_created ON transactions (user_id, created_at DESC, id DESC);
CREATE INDEX ix_transactions_user_version ON transactions (user_id, version);

-- Refunds seen on `refund.<status>`: their succeeded sum is a payment's refunded total too.
CREATE TABLE refunds (
    id UUID NOT NULL,
    payment_id UUID NOT NULL,
    amount BIGINT NOT NULL,
    status TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT pk_refunds PRIMARY KEY (id),
    CONSTRAINT ck_refunds_amount CHECK (amount > 0),
    CONSTRAINT ck_refunds_status CHECK (status IN ('pending', 'succeeded', 'failed'))
);
CREATE INDEX ix_refunds_payment ON refunds (payment_id) WHERE status = 'succeeded';

CREATE TABLE limit_reservations (
    reference_id UUID NOT NULL,
    user_id UUID NOT NULL,
    currency VARCHAR(3) NOT NULL,
    amount BIGINT NOT NULL,
    day DATE NOT NULL,
    month DATE NOT NULL,
    status TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT pk_limit_reservations PRIMARY KEY (reference_id),
    CONSTRAINT ck_limit_reservations_amount CHECK (amount > 0),
    CONSTRAINT ck_limit_reservations_status CHECK (status IN ('active', 'consumed', 'released'))
);

CREATE TABLE limit_counters (
    user_id UUID NOT NULL,
    currency VARCHAR(3) NOT NULL,
    period TEXT NOT NULL,
    period_start DATE NOT NULL,
    reserved BIGINT NOT NULL DEFAULT 0,
    CONSTRAINT pk_limit_counters PRIMARY KEY (user_id, currency, period, period_start),
    CONSTRAINT ck_limit_counters_period CHECK (period IN ('day', 'month')),
    CONSTRAINT ck_limit_counters_reserved CHECK (reserved >= 0)
);

CREATE TABLE ledger_config (
    key TEXT NOT NULL,
    config_version INTEGER NOT NULL,
    value JSONB NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT pk_ledger_config PRIMARY KEY (key)
);
"""

FUNCTIONS = """
CREATE FUNCTION ledger_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the journal is insert-only: % on % refused; post a correcting entry',
        TG_OP, TG_TABLE_NAME USING ERRCODE = 'insufficient_privilege';
END;
$$;

CREATE FUNCTION ledger_check_entry_balanced() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    unbalanced RECORD;
BEGIN
    SELECT currency, sum(amount) AS total INTO unbalanced
    FROM journal_lines WHERE entry_id = NEW.entry_id
    GROUP BY currency HAVING sum(amount) <> 0 LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'journal entry % does not balance: its % lines sum to %',
            NEW.entry_id, unbalanced.currency, unbalanced.total
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END;
$$;

CREATE FUNCTION ledger_check_entry_has_lines() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM journal_lines WHERE entry_id = NEW.id) THEN
        RAISE EXCEPTION 'journal entry % has no lines', NEW.id USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END;
$$;

-- Runs as the table owner: the service's role may insert lines but never write account totals.
CREATE FUNCTION ledger_apply_lines() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER
SET search_path = {schema} AS $$
BEGIN
    IF EXISTS (
        SELECT 1 FROM new_lines n JOIN ledger_accounts a ON a.id = n.account_id
        WHERE a.currency <> n.currency
    ) THEN
        RAISE EXCEPTION 'a journal line''s currency differs from its account''s'
            USING ERRCODE = 'check_violation';
    END IF;
    UPDATE ledger_accounts a
    SET debits_posted = a.debits_posted + t.debits,
        credits_posted = a.credits_posted + t.credits
    FROM (
        SELECT account_id,
               coalesce(sum(amount) FILTER (WHERE amount > 0), 0) AS debits,
               coalesce(-sum(amount) FILTER (WHERE amount < 0), 0) AS credits
        FROM new_lines GROUP BY account_id
    ) t
    WHERE a.id = t.account_id;
    RETURN NULL;
END;
$$;
"""

TRIGGERS = """
CREATE TRIGGER journal_lines_insert_only BEFORE UPDATE OR DELETE ON journal_lines
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER journal_lines_no_truncate BEFORE TRUNCATE ON journal_lines
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER journal_entries_insert_only BEFORE UPDATE OR DELETE ON journal_entries
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER journal_entries_no_truncate BEFORE TRUNCATE ON journal_entries
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change();
CREATE CONSTRAINT TRIGGER journal_lines_balanced AFTER INSERT ON journal_lines
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION ledger_check_entry_balanced();
CREATE CONSTRAINT TRIGGER journal_entries_have_lines AFTER INSERT ON journal_entries
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION ledger_check_entry_has_lines();
CREATE TRIGGER journal_lines_post_to_accounts AFTER INSERT ON journal_lines
    REFERENCING NEW TABLE AS new_lines
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_apply_lines();
"""

GRANTS = """
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{role}') THEN
        CREATE ROLE {role} NOLOGIN;
    END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL;  -- another database's migration created it at the same moment (roles are global)
END $$;
-- The login role runs `SET ROLE {role}`; a superuser may anyway, others need membership.
DO $$
BEGIN
    IF NOT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
        EXECUTE format('GRANT {role} TO %I', current_user);
    END IF;
EXCEPTION WHEN OTHERS THEN
    RAISE WARNING 'could not grant {role} to %: %; grant it by hand', current_user, SQLERRM;
END $$;
GRANT USAGE ON SCHEMA {schema} TO {role};
GRANT SELECT, INSERT ON journal_entries, journal_lines TO {role};
GRANT SELECT ON ledger_accounts TO {role};
GRANT INSERT (kind, owner, currency, normal_balance, must_not_go_negative)
    ON ledger_accounts TO {role};
GRANT SELECT, INSERT, UPDATE ON transactions, refunds, limit_reservations, limit_counters,
    ledger_config TO {role};
GRANT SELECT, INSERT, UPDATE, DELETE ON outbox, inbox TO {role};
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {schema} TO {role};
"""


def _statements(sql: str) -> list[str]:
    """Split on `;` at a line's end outside `$$` bodies (asyncpg prepares one statement at a time)."""
    statements, current, in_body = [], [], False
    for line in sql.splitlines():
        current.append(line)
        in_body ^= line.count("$$") % 2 == 1
        if not in_body and line.rstrip().endswith(";"):
            statement = "\n".join(current).strip()
            if statement.strip(";").strip():
                statements.append(statement)
            current = []
    return statements


def _run(sql: str) -> None:
    bind = op.get_bind()
    for statement in _statements(sql):
        bind.exec_driver_sql(statement)


def _schema() -> str:
    name = op.get_bind().exec_driver_sql("SELECT current_schema()").scalar()
    return '"' + str(name).replace('"', '""') + '"'


def upgrade() -> None:
    schema = _schema()
    create_outbox_tables(op)
    _run(TABLES)
    _run(FUNCTIONS.replace("{schema}", schema))
    _run(TRIGGERS)
    _run(GRANTS.replace("{schema}", schema).replace("{role}", ROLE))


def downgrade() -> None:
    schema = _schema()
    op.execute(f"REVOKE ALL ON ALL TABLES IN SCHEMA {schema} FROM {ROLE}")
    op.execute(f"REVOKE ALL ON ALL SEQUENCES IN SCHEMA {schema} FROM {ROLE}")
    op.execute(f"REVOKE USAGE ON SCHEMA {schema} FROM {ROLE}")
    op.execute(
        "DROP TABLE ledger_config, limit_counters, limit_reservations, refunds, transactions, "
        "journal_lines, journal_entries, ledger_accounts"
    )
    op.execute("DROP SEQUENCE transactions_version_seq")
    op.execute(
        "DROP FUNCTION ledger_refuse_change(), ledger_check_entry_balanced(), "
        "ledger_check_entry_has_lines(), ledger_apply_lines()"
    )
    drop_outbox_tables(op)
