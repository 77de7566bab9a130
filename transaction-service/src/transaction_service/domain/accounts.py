"""The chart of accounts: which kinds exist, their normal side and which may never go negative."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

PLATFORM = "platform"


class AccountKind(StrEnum):
    # What the platform owes a merchant, per merchant and currency (credit-normal).
    MERCHANT_AVAILABLE = "merchant_available"
    # Authorised but not yet captured for a merchant (credit-normal).
    MERCHANT_PENDING = "merchant_pending"
    # The provider's hold on the customer's card, the other side of merchant_pending (debit).
    PROVIDER_AUTHORIZATIONS = "provider_authorizations"
    # Captured funds the provider holds for us, per provider and currency (debit-normal).
    PROVIDER_CLEARING = "provider_clearing"
    # Refunds paid back to customers through the provider (credit-normal, contra clearing).
    PROVIDER_REFUNDS = "provider_refunds"
    # The platform's fee revenue (credit-normal).
    PLATFORM_FEES = "platform_fees"


@dataclass(frozen=True)
class AccountRules:
    normal_balance: str  # "debit" | "credit"
    must_not_go_negative: bool


RULES: dict[AccountKind, AccountRules] = {
    AccountKind.MERCHANT_AVAILABLE: AccountRules("credit", False),  # setting may flag it
    AccountKind.MERCHANT_PENDING: AccountRules("credit", True),
    AccountKind.PROVIDER_AUTHORIZATIONS: AccountRules("debit", True),
    AccountKind.PROVIDER_CLEARING: AccountRules("debit", True),
    AccountKind.PROVIDER_REFUNDS: AccountRules("credit", True),
    AccountKind.PLATFORM_FEES: AccountRules("credit", True),
}


@dataclass(frozen=True, order=True)
class AccountKey:
    """One account: its kind, whose it is (a user id, a provider, or "platform") and currency."""

    kind: AccountKind
    owner: str
    currency: str


def balance_of(normal_balance: str, debits: int, credits: int) -> int:
    """The balance on the account's normal side (positive when it holds what it should)."""
    return credits - debits if normal_balance == "credit" else debits - credits
