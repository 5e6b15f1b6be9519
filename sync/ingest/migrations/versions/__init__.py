"""The warehouse's Alembic revisions, one file each (see :mod:`sync.ingest.migrations`)."""
