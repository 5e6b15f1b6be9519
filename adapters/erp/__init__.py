"""The factory ERP: read-only, incremental polling of production runs (HTTP or SQL)."""
