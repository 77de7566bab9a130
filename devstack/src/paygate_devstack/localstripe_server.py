"""localstripe with its own store file (or none) instead of the shared /tmp/localstripe.pickle.

    python -m paygate_devstack.localstripe_server --port 58420 [--store FILE]

Upstream localstripe pickles its whole store to one fixed /tmp path on every write, so two
instances (a `make run` and a test session) would overwrite each other's data.
"""

from __future__ import annotations

import argparse
import pickle
import sys
from pathlib import Path


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
    sys.argv = [sys.argv[0], "--port", str(args.port), "--from-scratch"]
    server.start()


if __name__ == "__main__":
    main()
