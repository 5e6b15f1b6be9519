"""Store-and-forward sync to the central warehouse, and the central ingest."""
