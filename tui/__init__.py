"""The operator terminal UI (Textual); runs as its own process."""
