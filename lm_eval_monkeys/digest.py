"""Short digests: the one way a text is named by its content (cache keys, file names).

Sixteen hex digits (64 bits) of SHA-256: collisions stay negligible for the millions of
distinct answers a verdict cache holds, and names stay short enough for paths.
"""

from __future__ import annotations

import hashlib

DIGEST_LENGTH = 16


def short_digest(text: str | bytes) -> str:
    """The digest of ``text`` (undecodable surrogates included)."""
    data = text if isinstance(text, bytes) else text.encode("utf-8", "surrogatepass")
    return hashlib.sha256(data).hexdigest()[:DIGEST_LENGTH]
