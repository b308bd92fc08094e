"""Authenticated state: what the gateway enforces, derived from verified ledger entries.

The database is not trusted. Tokens, stages (with the entry that justified each) and
approvals are folded from ledger entries whose hashes are checked against the signed
head (:mod:`mlwarden.trust.projection`, :mod:`mlwarden.trust.follower`); immutable rows
carry signatures under the workspace key; :mod:`mlwarden.trust.audit` names every row
that disagrees.
"""

from mlwarden.trust.follower import StateFollower, trusted_state
from mlwarden.trust.projection import ModelFacts, TokenFacts, TrustedState, VersionFacts

__all__ = ["ModelFacts", "StateFollower", "TokenFacts", "TrustedState", "VersionFacts", "trusted_state"]
