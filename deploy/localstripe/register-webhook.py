"""Tell localstripe where to POST its signed events (what Stripe's dashboard does for real)."""

import os
import sys
import time
import urllib.parse
import urllib.request

WEBHOOK_ID = "paygate-payment-service"


def main() -> None:
    base = os.environ.get("LOCALSTRIPE_URL", "http://localstripe:8420").rstrip("/")
    if not base.startswith(("http://", "https://")):
        sys.exit(f"LOCALSTRIPE_URL must be an http(s) URL, not {base!r}")
    body = urllib.parse.urlencode(
        {"url": os.environ["WEBHOOK_URL"], "secret": os.environ["STRIPE_WEBHOOK_SECRET"]}
    ).encode()
    for attempt in range(1, 31):
        try:
            # the scheme is checked above
            urllib.request.urlopen(f"{base}/_config/webhooks/{WEBHOOK_ID}", data=body, timeout=5)  # noqa: S310
        except OSError as exc:
            print(f"attempt {attempt}: {exc}", file=sys.stderr)
            time.sleep(1)
        else:
            print(f"localstripe posts events to {os.environ['WEBHOOK_URL']}")
            return
    sys.exit("localstripe did not accept the webhook")


if __name__ == "__main__":
    main()
