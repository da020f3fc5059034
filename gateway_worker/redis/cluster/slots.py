"""Hash slots: CRC16 (XMODEM, what ``binascii.crc_hqx`` computes in C) of the key, or of
its hash tag, modulo 16384.

The hash tag is the part between the first ``{`` and the first ``}`` after it, when
that part is not empty (``{user:1}:cart`` and ``{user:1}:orders`` share a slot; ``{}x``
hashes the whole key).
"""

from __future__ import annotations

from binascii import crc_hqx

SLOTS = 16384


def key_slot(key: bytes) -> int:
    """The slot of ``key`` (see the module docstring)."""
    start = key.find(b"{")
    if start >= 0:
        end = key.find(b"}", start + 1)
        if end > start + 1:
            key = key[start + 1 : end]
    return crc_hqx(key, 0) & (SLOTS - 1)
