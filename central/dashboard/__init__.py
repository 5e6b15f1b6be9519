"""The central team's web dashboard: server-rendered pages over the warehouse reader
(docs/dashboard.md). ``routes(reader_factory, clock)`` gives the pages; the API app mounts
them at ``/``."""

from central.dashboard.login import PUBLIC_PATHS
from central.dashboard.routes import routes

__all__ = ["PUBLIC_PATHS", "routes"]
