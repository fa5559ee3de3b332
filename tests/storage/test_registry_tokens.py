"""API tokens on SQLite and PostgreSQL: issued once, stored as a digest, refused alike."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import asdict
from typing import Any

import pytest
from sqlalchemy import select

from metrology.fleet import Fleet
from metrology.tenancy import Principal, Role
from storage.errors import (
    AuthenticationError,
    ConflictError,
    InvalidDocumentError,
    PermissionDeniedError,
)
from storage.registry.tables import api_tokens
from storage.registry.tokens import REFUSED
from tests.storage.conftest import T0, Clock, Registry

LOCAL = Principal.local()
ACME_ADMIN = Principal("ann", "acme", Role.ADMIN, "tok-ann")
GLOBEX_ADMIN = Principal("gil", "globex", Role.ADMIN, "tok-gil")


@pytest.fixture
def loaded(registry: Registry, fleet: Fleet) -> Registry:
    registry.register_fleet(fleet)
    return registry


def stored_rows(registry: Registry) -> list[dict[str, Any]]:
    return registry.transact(
        "tokens",
        lambda c: [dict(r._mapping) for r in c.execute(select(api_tokens))],
        write=False,
    )


def test_a_token_is_shown_once_and_stored_as_a_digest(loaded: Registry) -> None:
    ops = loaded.operations
    issued = ops.create_token(
        ACME_ADMIN,
        {"tenant": "acme", "role": "calibration", "name": "lab bench 3",
         "expires_at": "2026-06-28T00:00:00Z"},
    )  # fmt: skip
    prefix, token_id, secret = issued.token.split("_", 2)
    assert (prefix, token_id) == ("cs", issued.record.token_id)
    assert len(token_id) == 12 and len(secret) == 43  # 48 bits of id, 256 bits of secret
    assert secret not in repr(issued)
    assert issued.record == ops.list_tokens(ops.scope(ACME_ADMIN))[0]
    assert (issued.record.role, issued.record.created_by, issued.record.created_at) == (
        "calibration", "ann", T0
    )  # fmt: skip
    (row,) = stored_rows(loaded)
    assert row["secret_sha256"] == hashlib.sha256(secret.encode()).hexdigest()
    assert secret not in str(row)
    entry = ops.audit_trail(ops.scope(ACME_ADMIN), limit=1).items[0]
    assert (entry.operation, entry.entity, entry.entity_key) == (
        "create_token", "token", token_id
    )  # fmt: skip
    assert entry.after == asdict(issued.record)  # the record: no secret, no digest
    assert ops.authenticate(issued.token) == Principal(
        "lab bench 3", "acme", Role.CALIBRATION, token_id
    )


def test_unknown_revoked_expired_and_forged_tokens_are_refused_alike(
    loaded: Registry, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    ops = loaded.operations
    revoked = ops.create_token(ACME_ADMIN, {"tenant": "acme", "role": "viewer", "name": "old"})
    expiring = ops.create_token(
        ACME_ADMIN,
        {"tenant": "acme", "role": "viewer", "name": "temp", "expires_at": "2026-05-28T21:26:40Z"},
    )
    valid = ops.create_token(ACME_ADMIN, {"tenant": "acme", "role": "viewer", "name": "wall"})
    assert ops.authenticate(expiring.token).name == "temp"
    ops.revoke_token(ACME_ADMIN, {"token_id": revoked.record.token_id, "reason": "leaked"})
    clock.advance(3600)  # temp expires now
    _, valid_id, valid_secret = valid.token.split("_", 2)
    candidates = {
        "revoked": revoked.token,
        "expired": expiring.token,
        "unknown": f"cs_{'0' * 12}_{valid_secret}",
        "wrong secret": f"cs_{valid_id}_{'A' * 43}",
        "malformed": "Bearer hunter2",
    }
    messages = set()
    with caplog.at_level(logging.WARNING, logger="storage.registry.tokens"):
        for token in candidates.values():
            with pytest.raises(AuthenticationError) as raised:
                ops.authenticate(token)
            messages.add(str(raised.value))
    assert messages == {REFUSED}
    logged = [r.getMessage() for r in caplog.records]
    assert [m.split(": ", 1)[1].split(" ")[0:2] for m in logged] == [
        ["token", revoked.record.token_id],
        ["token", expiring.record.token_id],
        ["unknown", "token"],
        ["wrong", "secret"],
        ["not", "a"],
    ]
    assert "was revoked" in logged[0] and "expired" in logged[1]
    assert ops.authenticate(valid.token).token_id == valid_id


def test_token_administration_stays_in_the_tenant(loaded: Registry) -> None:
    ops = loaded.operations
    issued = ops.create_token(LOCAL, {"tenant": "acme", "role": "admin", "name": "first admin"})
    ops.create_token(GLOBEX_ADMIN, {"tenant": "globex", "role": "viewer", "name": "g"})
    with pytest.raises(PermissionDeniedError, match="tenant 'acme' is not in the scope"):
        ops.create_token(GLOBEX_ADMIN, {"tenant": "acme", "role": "admin", "name": "x"})
    with pytest.raises(PermissionDeniedError, match=r"\(viewer of acme\) may not"):
        ops.create_token(Principal("v", "acme", Role.VIEWER, "t"),
                         {"tenant": "acme", "role": "admin", "name": "x"})  # fmt: skip
    with pytest.raises(PermissionDeniedError) as other:
        ops.revoke_token(GLOBEX_ADMIN, {"token_id": issued.record.token_id, "reason": "x"})
    with pytest.raises(PermissionDeniedError) as missing:
        ops.revoke_token(GLOBEX_ADMIN, {"token_id": "0123456789ab", "reason": "x"})
    assert str(other.value).replace(issued.record.token_id, "?") == str(missing.value).replace(
        "0123456789ab", "?"
    )
    with pytest.raises(InvalidDocumentError, match="expires_at: must be in the future"):
        ops.create_token(ACME_ADMIN, {"tenant": "acme", "role": "viewer", "name": "x",
                                      "expires_at": "2026-01-01T00:00:00Z"})  # fmt: skip
    with pytest.raises(InvalidDocumentError) as raised:
        ops.create_token(ACME_ADMIN, {"tenant": "acme", "role": "owner", "name": " "})
    assert sorted(field for field, _ in raised.value.errors) == ["name", "role"]
    revoked = ops.revoke_token(
        ACME_ADMIN, {"token_id": issued.record.token_id, "reason": "rotated"}
    )
    assert revoked.revoked_at == T0
    with pytest.raises(ConflictError, match="was revoked at"):
        ops.revoke_token(ACME_ADMIN, {"token_id": issued.record.token_id, "reason": "again"})
    assert [t.tenant for t in ops.list_tokens(ops.scope(ACME_ADMIN))] == ["acme"]
    assert [t.tenant for t in ops.list_tokens(ops.scope(LOCAL))] == ["acme", "globex"]
    with pytest.raises(PermissionDeniedError, match="tenant 'globex' is not in the scope"):
        ops.list_tokens(ops.scope(ACME_ADMIN), "globex")
