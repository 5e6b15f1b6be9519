"""The central ingest: gateway batches over MQTT and HTTPS into the warehouse, exactly once."""

from sync.ingest.service import IngestService, run_ingest
from sync.ingest.settings import IngestSettings

__all__ = ["IngestService", "IngestSettings", "run_ingest"]
