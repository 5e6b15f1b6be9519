"""Pure rule logic: values in, values out; no I/O, no asyncio, no clock reads."""
