"""Webdis's ETag: the MD5 of the body, and the ``If-None-Match`` test (304)."""

from __future__ import annotations

import hashlib


def etag_of(body: bytes) -> str:
    """Webdis's ETag: the MD5 of the body, hex, in double quotes."""
    return '"' + hashlib.md5(body).hexdigest() + '"'  # noqa: S324 - Webdis's ETag is MD5, not security


def etag_matches(header: str | None, etag: str) -> bool:
    """Whether ``If-None-Match`` (``header``) names ``etag`` (or ``*``): answer 304."""
    if not header:
        return False
    return header.strip() == etag or any(
        tag.strip() in (etag, "*", "W/" + etag) for tag in header.split(",")
    )
