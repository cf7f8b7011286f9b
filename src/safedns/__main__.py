"""``python -m safedns``: the ``safedns`` command line."""

from __future__ import annotations

from safedns._app.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
