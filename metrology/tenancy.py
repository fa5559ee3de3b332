"""Who may do what on whose registry: roles, principals, contracts and the scope they give.

A **tenant** is a manufacturer (it owns sites, gateways and instruments) or a calibration
provider, which serves client tenants under **contracts** (DESIGN.md, "Tenancy"). People and
programs act as a **principal**: a name, the tenant they act for, a :class:`Role`, and the id of
the API token they presented, or :data:`LOCAL` for the command line run on the server itself.

:func:`scope_of` computes, from a principal and the contracts of its tenant, the
:class:`Scope` it has at a given time: which tenants it may read, on which it may record and
amend calibration certificates, which it may administer, on which it may act on alerts, and
whether it may create tenants. Storage enforces it in every operation and every query
(confinement lives where the data is, not only in the web layer).

The rules, as a table (``tests/metrology/test_tenancy.py`` checks them)::

    role          own tenant                        a client under a contract in force
    viewer        read                              read
    operator      read, act on alerts               read
    calibration   read, calibrate                   read; calibrate if the contract's scope
                                                    is ``calibration``
    admin         read, administer, act on alerts   read
    local         everything on every tenant, creating tenants included

- *administer* is the tenant's own registry: sites, gateways, instruments, API tokens; an
  admin administers its own tenant only, never a client's.
- *calibrate* is recording certificates and amending them (ISO/IEC 17025:2017 §7.8.8) for the
  tenant's instruments, and nothing else there: a provider's calibration staff change no site,
  gateway or instrument of a client.
- an operator acts on alerts and changes no registry entry; a viewer only reads.
- A contract is in force from ``valid_from`` (inclusive; ``None``: since always) until
  ``valid_until`` (exclusive; ``None``: open-ended). A client whose contract has ended or not
  yet begun is outside the provider's scope, exactly like any other tenant.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

__all__ = ["LOCAL", "Contract", "ContractScope", "Principal", "Role", "Scope", "scope_of"]

LOCAL = "local"
"""The token id of the principal that runs the command line on the server itself."""


class Role(StrEnum):
    """What a principal may do in its own tenant (and, for a provider, at its clients)."""

    VIEWER = "viewer"
    """Reads only."""
    OPERATOR = "operator"
    """Reads, and acts on alerts; changes no registry entry."""
    CALIBRATION = "calibration"
    """Reads, and records and amends calibration certificates (own tenant, and clients under an
    active ``calibration`` contract)."""
    ADMIN = "admin"
    """Reads, acts on alerts, and administers its own tenant: sites, gateways, instruments,
    tokens."""


class ContractScope(StrEnum):
    """What a provider-client contract grants the provider."""

    READ = "read"
    """The provider's principals read the client's fleet."""
    CALIBRATION = "calibration"
    """As ``read``, and the provider's calibration staff record and amend certificates for the
    client's instruments."""


@dataclass(frozen=True, slots=True)
class Principal:
    """Who acts: a name (for the audit trail), the tenant, the role, the token presented.

    ``tenant`` is ``None`` only for the local principal (:meth:`local`), which acts for the
    platform itself and is not confined to a tenant.
    """

    name: str
    tenant: str | None
    role: Role
    token_id: str

    @classmethod
    def local(cls, name: str = LOCAL) -> Principal:
        """The command line run on the server itself: everything, creating tenants included."""
        return cls(name, None, Role.ADMIN, LOCAL)

    @property
    def is_local(self) -> bool:
        return self.token_id == LOCAL and self.tenant is None


@dataclass(frozen=True, slots=True)
class Contract:
    """``provider`` serves ``client`` with ``scope`` from ``valid_from`` until ``valid_until``.

    Times are epoch seconds, UTC; the period is half-open ``[valid_from, valid_until)``, and
    ``None`` leaves that side open.
    """

    provider: str
    client: str
    scope: ContractScope
    valid_from: float | None = None
    valid_until: float | None = None

    def in_force_at(self, at: float) -> bool:
        """Whether the contract grants anything at ``at``."""
        begun = self.valid_from is None or self.valid_from <= at
        not_over = self.valid_until is None or at < self.valid_until
        return begun and not_over

    def overlaps(self, other: Contract) -> bool:
        """Whether both are between the same provider and client and their periods intersect."""
        if (self.provider, self.client) != (other.provider, other.client):
            return False
        # Half-open periods [a, b) and [c, d) intersect when a < d and c < b (None: unbounded).
        return _before(self.valid_from, other.valid_until) and _before(
            other.valid_from, self.valid_until
        )


def _before(start: float | None, end: float | None) -> bool:
    """``start < end`` where ``None`` is the open side (minus or plus infinity)."""
    return start is None or end is None or start < end


_EVERY_TENANT: frozenset[str] | None = None


@dataclass(frozen=True, slots=True)
class Scope:
    """What a principal may do at time ``at``.

    Each set names tenants; ``None`` means every tenant (the local principal). Storage filters
    every query with :attr:`reads` and checks every change against the other sets.
    """

    principal: Principal
    at: float
    reads: frozenset[str] | None
    calibrates: frozenset[str] | None
    administers: frozenset[str] | None
    acts_on_alerts: frozenset[str] | None
    creates_tenants: bool

    @property
    def unconfined(self) -> bool:
        """Sees every tenant (the local principal)."""
        return self.reads is None

    def may_read(self, tenant: str | None) -> bool:
        """A row without a tenant (a message refused before its tenant was known) is read only
        by an unconfined scope."""
        return self.reads is None or (tenant is not None and tenant in self.reads)

    def may_calibrate(self, tenant: str) -> bool:
        return self.calibrates is None or tenant in self.calibrates

    def may_administer(self, tenant: str) -> bool:
        return self.administers is None or tenant in self.administers

    def may_act_on_alerts(self, tenant: str) -> bool:
        return self.acts_on_alerts is None or tenant in self.acts_on_alerts


def scope_of(principal: Principal, contracts: Iterable[Contract], at: float) -> Scope:
    """The scope of ``principal`` at ``at`` under ``contracts`` (any contracts may be given:
    only those in force at ``at`` whose provider is the principal's tenant count)."""
    if principal.is_local:
        return Scope(principal, at, _EVERY_TENANT, _EVERY_TENANT, _EVERY_TENANT, _EVERY_TENANT,
                     creates_tenants=True)  # fmt: skip
    own = principal.tenant
    if own is None:
        # Only the local principal acts for no tenant; anything else is confined to nothing.
        empty: frozenset[str] = frozenset()
        return Scope(principal, at, empty, empty, empty, empty, creates_tenants=False)
    in_force = [c for c in contracts if c.provider == own and c.in_force_at(at)]
    reads = frozenset({own, *(c.client for c in in_force)})
    role = principal.role
    calibrates: set[str] = set()
    if role is Role.CALIBRATION:
        calibrates = {own, *(c.client for c in in_force if c.scope is ContractScope.CALIBRATION)}
    administers = frozenset({own}) if role is Role.ADMIN else frozenset()
    acts = frozenset({own}) if role in (Role.OPERATOR, Role.ADMIN) else frozenset()
    return Scope(principal, at, reads, frozenset(calibrates), administers, acts,
                 creates_tenants=False)  # fmt: skip
