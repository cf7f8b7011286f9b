"""Child-process side of :class:`benchmarks._common.Child`.

``python -m benchmarks._child MODULE FUNC``: reads the parameters (one JSON line),
calls ``MODULE.FUNC(params)`` (a generator), writes each value it yields as one
JSON line and sends each JSON line read from stdin back into it. EOF on stdin
ends it. An exception is reported as ``{"child_error": ...}``.
"""

from __future__ import annotations

import importlib
import json
import sys
import traceback
from typing import Any


def _write(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def _read() -> Any:
    line = sys.stdin.readline()
    if not line:
        raise EOFError
    return json.loads(line)


def main(argv: list[str]) -> int:
    module, func = argv[1], argv[2]
    try:
        params = _read()
        gen = getattr(importlib.import_module(f"benchmarks.{module}"), func)(params)
        item = next(gen)
        while True:
            _write(item)
            try:
                message = _read()
            except EOFError:
                gen.close()
                return 0
            item = gen.send(message)
    except StopIteration:
        _write({"done": True})
        return 0
    except EOFError:
        return 0
    except BaseException as exc:
        _write({"child_error": f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"})
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
