"""Fixed label scanners that act as TCP servers sending one read per line."""

from adapters.scanner.client import ScannerAdapter

__all__ = ["ScannerAdapter"]
