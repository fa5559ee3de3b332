"""The committed OpenAPI document, ``docs/openapi.json``, written from the routes.

    .venv/bin/python -m calstream.api.openapi            # rewrites docs/openapi.json
    .venv/bin/python -m calstream.api.openapi -          # prints it

A test compares the committed file with the document the API serves at ``/v1/openapi.json``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from calstream.api.app import application

COMMITTED = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"
REGENERATE = ".venv/bin/python -m calstream.api.openapi"
"""The command that rewrites the committed document."""


def document() -> dict[str, Any]:
    return application().openapi()


def text(value: dict[str, Any]) -> str:
    """The document as committed: two-space indents, a final newline."""
    return json.dumps(value, indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str]) -> None:
    out = argv[0] if argv else str(COMMITTED)
    rendered = text(document())
    if out == "-":
        sys.stdout.write(rendered)
    else:
        Path(out).write_text(rendered, encoding="utf-8")
        print(f"wrote {out}", file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1:])
