"""The local store: schema and migrations, the one writer, and the readers' queries."""

from dashboard.store.writer import Store

__all__ = ["Store"]
