"""Benchmarks: the gateway's figures beside the bare libraries', measured in the same run.

``make bench`` (``python -m bench``) runs every phase and writes ``bench/results/latest.json``
and ``bench/results/latest.md``; ``python -m bench --quick`` is the tiny smoke run the test
suite uses. See :mod:`bench.run` for the phases and their sizes.
"""
