"""The device simulators' class docstrings are their ``__doc__``: ``help()`` and the API
docs show the constructor arguments only when nothing stands before the docstring."""

import pytest

from adapters.simulators import ModbusSimulator, OpcUaSimulator, ScannerSimulator


@pytest.mark.parametrize("simulator", [ModbusSimulator, OpcUaSimulator, ScannerSimulator])
def test_simulator_docstring_is_the_class_doc(simulator: type) -> None:
    doc = simulator.__doc__
    assert doc is not None
    assert "Args:" in doc
    assert "host: address to listen on." in doc
