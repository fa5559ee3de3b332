"""API tokens: issued once, stored as a SHA-256 digest, checked in constant time.

A token is ``cs_<id>_<secret>``: ``<id>`` (12 hex digits) names the row of ``api_tokens``;
``<secret>`` is 32 random bytes from :mod:`secrets` (``token_urlsafe``, 256 bits). Only
``SHA-256(secret)`` is stored, and the token string is returned once, by :func:`issue`.

Why a plain SHA-256 and not a password hash (bcrypt, scrypt, Argon2): those are slow on
purpose, to make guessing a *low-entropy* secret (a password people chose) from a stolen digest
expensive. A 256-bit random secret cannot be guessed at any speed (2^256 candidates), so a
slow hash adds no protection and would cost every API request tens of milliseconds of CPU.
A single SHA-256 of a high-entropy secret is what API token schemes use for that reason
(GitHub's, for example); a leaked ``api_tokens`` table then lets no one authenticate.

:func:`authenticate` refuses an unknown id, a wrong secret, a revoked and an expired token with
the same :class:`~storage.errors.AuthenticationError` and the same message; the reason goes to
the log (``storage.registry.tokens``). The secret's digest is compared with
:func:`hmac.compare_digest` (constant time), against a dummy digest when the id is unknown, so
the comparison takes as long for every refusal. The id is not secret: it is looked up in an
index, and may appear in logs and in the audit trail.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
from typing import Any

from sqlalchemy import Connection, select

from metrology.tenancy import Principal, Role
from storage.errors import AuthenticationError
from storage.registry.records import IssuedToken, TokenRecord
from storage.registry.tables import api_tokens

log = logging.getLogger(__name__)

PREFIX = "cs"
_ID_BYTES = 6
_SECRET_BYTES = 32
_TOKEN = re.compile(r"^cs_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")
_DUMMY_DIGEST = hashlib.sha256(b"calstream: no such token").hexdigest()
REFUSED = "the token is not valid (unknown, revoked or expired)"
"""The one message of every refusal."""

TOKEN_COLUMNS = ("token_id", "tenant", "role", "name", "created_at", "created_by", "expires_at",
                 "revoked_at")  # fmt: skip
"""What a token's listing and its audit entries show: never the secret's digest."""


def digest(secret: str) -> str:
    """SHA-256 of the secret, as hex (see the module docstring for why this hash)."""
    return hashlib.sha256(secret.encode("ascii")).hexdigest()


def new_token() -> tuple[str, str, str]:
    """``(token id, secret, token string)`` from :mod:`secrets`."""
    token_id = secrets.token_hex(_ID_BYTES)
    secret = secrets.token_urlsafe(_SECRET_BYTES)
    return token_id, secret, f"{PREFIX}_{token_id}_{secret}"


def issue(
    connection: Connection,
    *,
    tenant: str,
    role: Role,
    name: str,
    created_at: float,
    created_by: str,
    expires_at: float | None,
) -> IssuedToken:
    """Store a new token (its digest) and return it with its string, the only time it is seen."""
    token_id, secret, token = new_token()
    row = {
        "token_id": token_id,
        "tenant": tenant,
        "role": role.value,
        "name": name,
        "created_at": created_at,
        "created_by": created_by,
        "expires_at": expires_at,
        "revoked_at": None,
    }
    connection.execute(api_tokens.insert(), {**row, "secret_sha256": digest(secret)})
    return IssuedToken(token, TokenRecord(**row))


def token_record(row: Any) -> TokenRecord:
    return TokenRecord(**{c: getattr(row, c) for c in TOKEN_COLUMNS})


def authenticate(connection: Connection, token: str, at: float) -> Principal:
    """The principal of ``token`` at time ``at``; :class:`AuthenticationError` otherwise."""
    match = _TOKEN.match(token) if isinstance(token, str) else None
    token_id, secret = match.groups() if match else ("", "")
    row = None
    if match:
        row = connection.execute(
            select(api_tokens).where(api_tokens.c.token_id == token_id)
        ).first()
    expected = _DUMMY_DIGEST if row is None else row.secret_sha256
    # Compared in every case, so an unknown id costs the same as a wrong secret.
    secret_ok = hmac.compare_digest(digest(secret), expected)
    if not match:
        reason = "not a calstream token (malformed)"
    elif row is None:
        reason = f"unknown token id {token_id}"
    elif not secret_ok:
        reason = f"wrong secret for token {token_id}"
    elif row.revoked_at is not None:
        reason = f"token {token_id} was revoked at {row.revoked_at}"
    elif row.expires_at is not None and at >= row.expires_at:
        reason = f"token {token_id} expired at {row.expires_at}"
    else:
        return Principal(row.name, row.tenant, Role(row.role), row.token_id)
    log.warning("authentication refused: %s", reason)
    raise AuthenticationError(REFUSED)
