"""calstream's HTTP API: the registry operations and the scoped reads over HTTP (``/v1``).

- :mod:`calstream.api.app`: :func:`create_app` (FastAPI), the OpenAPI 3.1 document
- :mod:`calstream.api.access`: bearer tokens, principals, scopes
- :mod:`calstream.api.routes`: the resources
- :mod:`calstream.api.bodies` and :mod:`calstream.api.schemas`: what requests carry and what
  answers hold (storage's own documents and records)
- :mod:`calstream.api.paging`: keyset cursors, ``next`` links, time ranges
- :mod:`calstream.api.problems`: RFC 9457 problem details naming the field
- :mod:`calstream.api.server`: uvicorn, in a thread of `calstream run` or on its own
  (`calstream api`)
- :mod:`calstream.api.openapi`: ``python -m calstream.api.openapi`` writes ``docs/openapi.json``

docs/api.md is the guide.
"""

from calstream.api.app import create_app

__all__ = ["create_app"]
