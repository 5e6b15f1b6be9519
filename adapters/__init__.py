"""Device and ERP input/output: OPC UA, Modbus, scanners, and their simulators."""
