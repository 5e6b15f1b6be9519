"""The core of Lineside: what every other part shares, depending on nothing else in it.

- :mod:`~gateway.core.records`: the records a line produces (packs, readings, labels,
  alerts, device events) and their flags;
- :mod:`~gateway.core.errors`: the one exception tree;
- :mod:`~gateway.core.clock`: the clock seam (wall and monotonic time), and a manual clock;
- :mod:`~gateway.core.backoff`: capped exponential backoff with full jitter;
- :mod:`~gateway.core.link`: the state of a link to a device or peer;
- :mod:`~gateway.core.runs`: production runs and products, parsed from the ERP, and their
  stored form;
- :mod:`~gateway.core.codecs`: pure codecs (Modbus registers, bit fields, units, GS1).

The store, the config, the adapters, the rules and sync build on these; the import
direction is tested in tests/unit/test_import_direction.py.
"""
