"""The people who may sign approvals (``approvers:`` in ``policy.yaml``) and which identities are the same person.

    approvers:
      - name: alice                       # signs as principal key:alice
        key: "ed25519:MCowBQYDK2VwAyEA..."  # printed by `mlwarden keys create --name alice`
        accounts: [local:alice, token:0123456789abcdef]   # her other identities

A principal is one *person*: ``key:<name>`` and every listed account are the approver
``<name>``; any other principal is a person of its own. Four eyes compares persons.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from mlwarden.errors import InvalidInput
from mlwarden.identity.personal_keys import check_name, parse_public_key, public_key_text
from mlwarden.policy_file import read_policy

KEY_PRINCIPAL = "key:"
_FIELDS = {"name", "key", "accounts"}


@dataclass(frozen=True, slots=True)
class Approver:
    """One person who signs approvals with their own key."""

    name: str
    key: Ed25519PublicKey
    accounts: tuple[str, ...] = ()

    @property
    def principal(self) -> str:
        """How approvals signed with this key are recorded."""
        return KEY_PRINCIPAL + self.name


@dataclass(frozen=True, slots=True)
class Approvers:
    """The policy's approvers, looked up by name and by public key."""

    entries: tuple[Approver, ...] = ()

    def by_name(self, name: str) -> Approver | None:
        return next((a for a in self.entries if a.name == name), None)

    def by_key(self, key: Ed25519PublicKey) -> Approver | None:
        text = public_key_text(key)
        return next((a for a in self.entries if public_key_text(a.key) == text), None)

    def person_of(self, principal: str) -> str:
        """``person:<name>`` for a listed approver's key or account, else the principal itself."""
        for approver in self.entries:
            if principal == approver.principal or principal in approver.accounts:
                return f"person:{approver.name}"
        return principal

    def same_person(self, first: str, second: str) -> bool:
        return self.person_of(first) == self.person_of(second)


def _approver(i: int, item: Any) -> Approver:
    where = f"policy approvers[{i}]"
    if not isinstance(item, dict):
        raise InvalidInput(f"{where} must be a mapping with name, key and optional accounts")
    unknown = sorted(str(k) for k in item if k not in _FIELDS)
    if unknown:
        raise InvalidInput(f"{where} has unknown field(s) {', '.join(unknown)}; expected name, key, accounts")
    if "name" not in item or "key" not in item:
        raise InvalidInput(f"{where} needs a name and a key")
    try:
        name = check_name(item["name"])
        key = parse_public_key(item["key"])
    except InvalidInput as exc:
        raise InvalidInput(f"{where}: {exc.message}") from exc
    accounts = item.get("accounts") or []
    if not isinstance(accounts, list) or not all(isinstance(a, str) and a.strip() == a and a for a in accounts):
        raise InvalidInput(f"{where} accounts must be a list of principals such as local:alice or token:<id>")
    if any(a.startswith(KEY_PRINCIPAL) for a in accounts):
        raise InvalidInput(f"{where} accounts cannot name key: principals; each key is its own approver entry")
    return Approver(name, key, tuple(accounts))


def parse_approvers(raw: Any) -> Approvers:
    """Parse the ``approvers:`` list; any malformed, duplicate or ambiguous entry is an error (fail closed)."""
    if raw is None:
        return Approvers()
    if not isinstance(raw, list):
        raise InvalidInput("policy `approvers` must be a list of {name, key, accounts}")
    entries = tuple(_approver(i, item) for i, item in enumerate(raw))
    seen_names: set[str] = set()
    seen_keys: set[str] = set()
    seen_accounts: set[str] = set()
    for entry in entries:
        key = public_key_text(entry.key)
        if entry.name in seen_names:
            raise InvalidInput(f"policy approvers: {entry.name} is listed twice")
        if key in seen_keys:
            raise InvalidInput(f"policy approvers: {entry.name}'s key is also listed for another approver")
        shared = seen_accounts & set(entry.accounts)
        if shared:
            raise InvalidInput(f"policy approvers: account(s) {', '.join(sorted(shared))} listed for two approvers")
        seen_names.add(entry.name)
        seen_keys.add(key)
        seen_accounts.update(entry.accounts)
    return Approvers(entries)


def load_approvers(path: Path) -> Approvers:
    """The approvers of a policy file (missing or unreadable: an error)."""
    return parse_approvers(read_policy(path, required=True).get("approvers"))
