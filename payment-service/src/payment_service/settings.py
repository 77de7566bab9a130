"""payment-service settings: connector choice, Stripe credentials, executor and reconciler tuning."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, SecretStr, model_validator

from paygate_common.settings import DEV_SECRET_MARKER, ServiceSettings

ProviderName = Literal["stripe", "paypal", "sslcommerz", "sandbox"]


class Settings(ServiceSettings):
    """`PAYMENT_SERVICE_<FIELD>` wins; `STRIPE_API_BASE`, `STRIPE_API_KEY`, ... work unprefixed."""

    registry_name: ClassVar[str] = "payment"

    # The default provider: what an order's charge (order.create) and a POST /payments that
    # names none use, until admin-service's `payments.providers` says otherwise.
    connector: ProviderName = "stripe"
    # Providers that take NEW payments (`payments.providers` replaces this at run time). A
    # payment of a provider disabled later can still be captured, voided and refunded.
    enabled_providers: list[ProviderName] = Field(
        default=["stripe", "sandbox", "paypal", "sslcommerz"], min_length=1
    )
    # Every replica re-reads `payments.providers` from admin-service this often (config.changed
    # reaches only one replica of the consumer group).
    provider_config_reload_seconds: float = Field(default=60.0, gt=0)
    # Where customers' browsers and providers reach us (return URLs, IPN URL); empty = the
    # gateway's address from the service registry plus /api/v1.
    public_url: str = ""

    stripe_api_base: str = "https://api.stripe.com"
    stripe_api_key: SecretStr = SecretStr(f"sk_test_{DEV_SECRET_MARKER}-change-me")
    stripe_webhook_secret: SecretStr = SecretStr(f"whsec_{DEV_SECRET_MARKER}-change-me")
    # Secrets still accepted while a rotation is under way (JSON list in the environment).
    stripe_webhook_previous_secrets: list[SecretStr] = Field(default_factory=list)
    # One provider request may take this long; the reconciler waits longer than that (see below).
    stripe_timeout_seconds: float = 10.0
    webhook_tolerance_seconds: int = 300

    # PayPal (Orders v2). Unprefixed `PAYPAL_*` work too (`make run` points them at the stand-in).
    paypal_api_base: str = "https://api-m.sandbox.paypal.com"
    paypal_client_id: str = ""
    paypal_client_secret: SecretStr = SecretStr(f"{DEV_SECRET_MARKER}-change-me")
    paypal_webhook_id: str = ""
    # "certificate": verify PAYPAL-TRANSMISSION-SIG against the certificate at PAYPAL-CERT-URL
    # (host on the allow-list below); "api": ask PayPal's verify-webhook-signature endpoint.
    paypal_webhook_verification: Literal["certificate", "api"] = "certificate"
    paypal_webhook_cert_hosts: list[str] = Field(
        default_factory=lambda: [
            "api.paypal.com",
            "api-m.paypal.com",
            "api.sandbox.paypal.com",
            "api-m.sandbox.paypal.com",
        ]
    )
    paypal_webhook_require_https: bool = True
    paypal_timeout_seconds: float = 10.0
    paypal_brand_name: str = "paygate"

    # SSLCommerz (v4). Unprefixed `SSLCOMMERZ_*` work too.
    sslcommerz_api_base: str = "https://sandbox.sslcommerz.com"
    sslcommerz_store_id: str = ""
    sslcommerz_store_password: SecretStr = SecretStr(f"{DEV_SECRET_MARKER}-change-me")
    sslcommerz_timeout_seconds: float = 15.0

    # Payment executor: ONE loop per process leases up to a batch of `created` payments, calls
    # their providers concurrently and records the answers in one transaction.
    executor_enabled: bool = True
    executor_batch_size: int = Field(default=32, ge=1, le=500)
    executor_poll_seconds: float = 0.2
    # A claimed payment is left alone by other executors this long (covers the user-service call).
    executor_lease_seconds: float = 15.0
    retry_base_seconds: float = 1.0
    retry_max_seconds: float = 60.0
    # After this many provider attempts with an unknown outcome the payment fails for good.
    max_provider_attempts: int = 10

    # An attempt still `in_flight` after this long is reconciled with the provider. It must be
    # longer than a provider request can take (stripe_timeout_seconds), or a slow request could
    # be mistaken for a lost one.
    reconcile_after_seconds: float = 30.0
    reconcile_interval_seconds: float = 5.0

    # An authorisation (capture_method=manual) left uncaptured this long is voided (Stripe's
    # own limit for card authorisations is 7 days); the expiry worker looks this often.
    capture_window_seconds: float = Field(default=7 * 24 * 3600.0, gt=0)
    expiry_interval_seconds: float = Field(default=60.0, gt=0)
    # A payment waiting for its payer at a provider (PayPal approval, SSLCommerz page, 3-D
    # Secure) this long without progress is looked up there and, unless the payer approved,
    # cancelled with failure_code `action_expired` (an unpaid hosted checkout: at its page's
    # expiry, `checkout_ttl_seconds`). The sweeper looks this often; a provider that cannot be
    # asked is asked again after the shared backoff (`retry_base/max_seconds`).
    action_window_seconds: float = Field(default=3600.0, gt=0)
    abandoned_interval_seconds: float = Field(default=60.0, gt=0)
    # A capture, cancel or refund request waits this long for the provider's answer before it
    # answers with the state recorded so far (the operation sender finishes the job).
    operation_wait_seconds: float = Field(default=10.0, ge=0)

    # Idempotency keys of POST /payments, captures, cancels and refunds are kept this long.
    idempotency_ttl_seconds: int = Field(default=24 * 3600, ge=24 * 3600)
    list_default_limit: int = Field(default=20, ge=1, le=100)

    # Sandbox connector: simulated latency and injected retryable failures (benchmarks, chaos).
    sandbox_latency_ms: int = 0
    sandbox_failure_rate: float = Field(default=0.0, ge=0.0, le=1.0)

    # Reserve each direct payment against the user's limits at transaction-service before
    # accepting it (fails closed: 503 `limits_unavailable` while it cannot be reached).
    limits_enabled: bool = True

    # Hosted checkout (`/checkout/{payment_id}` at the gateway root): the page a customer pays
    # on. Its browser URL is built from this when set (production: the public gateway URL),
    # else from the gateway's X-Forwarded-Host / X-Forwarded-Proto.
    checkout_base_url: str | None = None
    # Signs the page token each checkout page's own calls carry (binds them to one payment).
    checkout_secret: SecretStr = SecretStr(f"{DEV_SECRET_MARKER}-checkout-secret-change-me")
    # A checkout page not paid within this long refuses payment (the merchant creates another).
    checkout_ttl_seconds: int = Field(default=24 * 3600, gt=0)
    # Stripe.js on the checkout page: the publishable key, and where Stripe.js is loaded from
    # (unset: https://js.stripe.com/v3/ for the real API, `{stripe_api_base}/js.stripe.com/v3/`
    # otherwise — localstripe serves its stand-in there).
    stripe_publishable_key: str = "pk_test_paygate_local"
    stripe_js_url: str | None = None

    def checkout_stripe_js_url(self) -> str:
        if self.stripe_js_url:
            return self.stripe_js_url
        base = self.stripe_api_base.rstrip("/")
        if base == "https://api.stripe.com":
            return "https://js.stripe.com/v3/"
        return f"{base}/js.stripe.com/v3/"

    @model_validator(mode="after")
    def _default_provider_is_enabled(self) -> Settings:
        if self.connector not in self.enabled_providers:
            raise ValueError("PAYMENT_SERVICE_CONNECTOR (the default provider) must be enabled")
        return self

    def public_base(self) -> str:
        """The public API base URL (no trailing slash) that browsers and providers call back."""
        return (self.public_url or f"{self.service_url('gateway')}/api/v1").rstrip("/")
