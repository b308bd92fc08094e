"""Querying and exporting the record: filters, keyset-paginated queries, ``follow`` and streaming export.

>>> from mlwarden.audit import parse_filter
>>> parse_filter(kinds=["prediction,access.denied"], limit=10).kinds
('prediction', 'access.denied')
"""

from mlwarden.audit.filters import AuditFilter, parse_filter, parse_time
from mlwarden.audit.query import AuditPage, AuditRow, follow, query_entries, query_page

__all__ = [
    "AuditFilter",
    "AuditPage",
    "AuditRow",
    "follow",
    "parse_filter",
    "parse_time",
    "query_entries",
    "query_page",
]
