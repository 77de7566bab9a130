"""FX errors with stable codes (rendered as problem+json by the shared handler)."""

from __future__ import annotations

from paygate_common.errors import (
    Conflict,
    InvalidRequest,
    NotFound,
    PaygateError,
    ServiceUnavailable,
    UpstreamError,
)


class UnknownCurrency(InvalidRequest):
    code, title = "unknown_currency", "Unknown currency"


class RateUnavailable(InvalidRequest):
    # A known currency with no rate on that date (ECB never published it, no operator rate).
    code, title = "rate_unavailable", "No rate for this currency on this date"


class InvalidDateRange(InvalidRequest):
    code, title = "invalid_date_range", "The date or date range is not valid"


class SameCurrency(InvalidRequest):
    code, title = "same_currency", "A quote needs two different currencies"


class AmountTooSmall(InvalidRequest):
    code, title = "amount_too_small", "The converted amount rounds to zero"


class CurrencyPublishedByEcb(InvalidRequest):
    code, title = "currency_published_by_ecb", "The ECB publishes this currency"


class RatesStale(ServiceUnavailable):
    code, title = "rates_stale", "The rates are too old to lock a price"


class RateFeedUnavailable(UpstreamError):
    code, title = "rate_feed_unavailable", "The reference-rate feed could not be read"


class QuoteNotFound(NotFound):
    # Also what a caller sees for someone else's quote: existence is not disclosed.
    code, title = "quote_not_found", "Quote not found"


class QuoteExpired(PaygateError):
    status_code, code, title = 410, "quote_expired", "The quote has expired"


class QuoteRedeemed(Conflict):
    code, title = "quote_redeemed", "The quote was already redeemed"
