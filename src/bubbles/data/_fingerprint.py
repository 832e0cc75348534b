"""One fingerprint of several texts (xxh3-128), for plans of reads and queries."""

from __future__ import annotations

__all__ = ["digest"]


def digest(*parts: str) -> str:
    """``xxh3-128`` hex digest of ``parts`` (each terminated by a NUL, so ``("ab", "c") != ("a", "bc")``)."""
    import xxhash

    h = xxhash.xxh3_128()
    for part in parts:
        h.update(part.encode("utf-8", "surrogatepass"))
        h.update(b"\0")
    return str(h.hexdigest())
