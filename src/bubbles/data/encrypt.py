"""Encrypted deliverables in the age format (https://age-encryption.org/v1), through ``pyrage``.

The receiving team makes a key pair with the standard tool (``age-keygen -o key.txt``) and
gives the sender its public key (``age1...``); the sender encrypts each file to it
(``deliver(..., encrypt_to="${PARTNER_AGE_KEY}")``); the receiver opens the files with any age
implementation: ``age -d -i key.txt orders.csv.age > orders.csv``, ``rage``, or
:func:`decrypt_file`. SSH public keys (``ssh-ed25519 ...``) work as recipients too. age
authenticates every 64 KiB chunk and the end of the file, so truncation or tampering fails
decryption; the sender keeps no secret at all.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from .._errors import ConfigError, DataError, MissingDependencyError
from .._secrets import Secret, resolve
from .files._atomic import atomic_file
from .files._fs import locate

__all__ = ["FORMAT", "SUFFIX", "decrypt_file", "encrypt_file", "recipients"]

FORMAT = "age-encryption.org/v1"
SUFFIX = ".age"


def _pyrage() -> Any:
    try:
        import pyrage
    except ImportError as exc:
        raise MissingDependencyError("encrypted deliveries (age)", "pyrage", "crypto") from exc
    return pyrage


def recipients(values: str | Secret | Sequence[str | Secret]) -> tuple[list[Any], list[str]]:
    """Parse age (``age1...``) or SSH public keys, each possibly a ``${NAME}`` reference or several per line.

    Returns the pyrage recipients and their texts (for the manifest: public keys are not secret).
    """
    pyrage = _pyrage()
    items = [values] if isinstance(values, str | Secret) else list(values)
    parsed, texts = [], []
    for item in items:
        text = item.get() if isinstance(item, Secret) else resolve(item, purpose="encrypting deliveries")
        for line in text.splitlines():
            key = line.strip()
            if not key or key.startswith("#"):
                continue
            try:
                parsed.append(pyrage.ssh.Recipient.from_str(key) if key.startswith("ssh-")
                              else pyrage.x25519.Recipient.from_str(key))
            except pyrage.RecipientError as exc:
                raise ConfigError(f"deliver(encrypt_to=...): {key[:16]!r}... is not an age public key ({exc}). Ask the "
                                  "receiver for the public key `age-keygen` printed (age1...), or an SSH public key.") from None
            texts.append(key)
    if not parsed:
        raise ConfigError("deliver(encrypt_to=...): no public key given. Pass the receiver's age public key (age1...).")
    return parsed, texts


def encrypt_file(src: str, dst: str, to: list[Any]) -> None:
    """Encrypt ``src`` into ``dst`` for the pyrage recipients ``to`` (streaming, constant memory)."""
    pyrage = _pyrage()
    try:
        pyrage.encrypt_file(src, dst, to)
    except pyrage.EncryptError as exc:  # pragma: no cover - only on I/O failure
        raise DataError(f"Encrypting {src} failed: {exc}.", source=src) from None


def decrypt_file(src: str | os.PathLike[str], dst: str | os.PathLike[str], identity: str | Secret) -> None:
    """Decrypt an age file (the receiving side); ``dst`` appears only once the whole file checked out.

    Args:
        src: the ``.age`` file.
        dst: where the plaintext goes (written atomically).
        identity: the age secret key (``AGE-SECRET-KEY-1...``) or the text of a key file, normally a
            secret reference such as ``"${DELIVERY_IDENTITY}"``.

    Example:
        >>> from bubbles.data.encrypt import decrypt_file
        >>> decrypt_file("orders.csv.age", "orders.csv", "${DELIVERY_IDENTITY}")  # doctest: +SKIP
    """
    pyrage = _pyrage()
    text = identity.get() if isinstance(identity, Secret) else resolve(identity, purpose="decrypting deliveries")
    keys = [line.strip() for line in text.splitlines() if line.strip().startswith("AGE-SECRET-KEY-")]
    try:
        identities = [pyrage.x25519.Identity.from_str(k) for k in keys]
    except pyrage.IdentityError as exc:
        raise ConfigError(f"decrypt_file(): the identity is not an age secret key ({exc}).") from None
    if not identities:
        raise ConfigError("decrypt_file(): no age secret key (AGE-SECRET-KEY-1...) in the identity given. Pass the "
                          "contents of the key file age-keygen wrote, normally as a secret reference.")
    src, dst = os.fspath(src), os.fspath(dst)
    with atomic_file(locate(dst)) as tmp:
        try:
            pyrage.decrypt_file(src, tmp, identities)
        except (pyrage.DecryptError, OSError) as exc:  # a damaged payload chunk surfaces as OSError
            raise DataError(f"{src} cannot be decrypted: {exc}. Either the file was truncated or altered, or it was "
                            "not encrypted to this key.", source=src) from None
