"""Pure codecs: GS1 element strings and Modbus register decoding.

No I/O, no asyncio, no clock reads.
"""
