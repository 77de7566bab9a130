"""localstripe with its own store file (or none) instead of the shared /tmp/localstripe.pickle.

    python -m paygate_devstack.localstripe_server --port 58420 [--store FILE]

Upstream localstripe pickles its whole store to one fixed /tmp path on every write, so two
instances (a `make run` and a test session) would overwrite each other's data.

Its Stripe.js stand-in (`/js.stripe.com/v3/`) also lacks `createPaymentMethod`, the call a
page tokenises a card with; this serves it with that function added and, as real Stripe does,
lets `POST /v1/payment_methods` authenticate with a publishable key (`key=pk_…`), so a browser
can turn a card into a `pm_…` without the card ever reaching the page's own server.
"""

from __future__ import annotations

import argparse
import pickle
import sys
from pathlib import Path
from typing import Any


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m paygate_devstack.localstripe_server")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--store", type=Path, default=None, help="persist objects to this file")
    args = parser.parse_args(argv)

    from localstripe import resources, server

    store_path: Path | None = args.store

    def load(self: resources.Store) -> None:
        if store_path is None or not store_path.exists():
            return
        try:
            with open(store_path, "rb") as f:
                old = pickle.load(f)  # noqa: S301 - our own file in the state dir
        except Exception as exc:
            print(f"ignoring unreadable localstripe store {store_path}: {exc}", file=sys.stderr)
            return
        self.clear()
        self.update(old)

    def dump(self: resources.Store) -> None:
        if store_path is None:
            return
        tmp = store_path.with_suffix(".tmp")
        with open(tmp, "wb") as f:
            pickle.dump(dict(self), f, protocol=pickle.HIGHEST_PROTOCOL)
        tmp.replace(store_path)

    resources.Store.try_load_from_disk = load
    resources.Store.dump_to_disk = dump
    resources.store.try_load_from_disk()
    _add_payment_method_tokenisation(server)
    sys.argv = [sys.argv[0], "--port", str(args.port), "--from-scratch"]
    server.start()


STRIPE_JS_ADDITION = Path(__file__).with_name("localstripe_v3_payment_methods.js")


def _add_payment_method_tokenisation(server: Any) -> None:
    """Stripe.js `createPaymentMethod` in the stand-in, and the publishable key it posts with."""
    from aiohttp import web

    original_js = Path(server.__file__).with_name("localstripe-v3.js").read_text()
    stripe_js = original_js + STRIPE_JS_ADDITION.read_text()

    async def serve_stripe_js(request: web.Request) -> web.StreamResponse:
        if request.method == "GET" and request.path == "/js.stripe.com/v3/":
            return web.Response(text=stripe_js, content_type="application/javascript")
        return web.Response(status=404)

    @web.middleware
    async def publishable_key_tokenisation(request: web.Request, handler: Any) -> Any:
        if request.path == "/js.stripe.com/v3/":
            return await serve_stripe_js(request)
        if (
            request.method == "POST"
            and request.path == "/v1/payment_methods"
            and "Authorization" not in request.headers
        ):
            data = await server.get_post_data(request, remove_auth=False)
            if isinstance(data, dict) and str(data.get("key", "")).startswith("pk_"):
                # What Stripe.js may do with a publishable key: create a PaymentMethod, and
                # nothing else (localstripe's own check admits only secret keys here).
                try:
                    return await request.match_info.handler(request)
                finally:
                    server.store.dump_to_disk()
        return await handler(request)

    # After localstripe's error middleware (its UserErrors still become Stripe-shaped errors),
    # before its authentication.
    server.app.middlewares.insert(1, publishable_key_tokenisation)


if __name__ == "__main__":
    main()
