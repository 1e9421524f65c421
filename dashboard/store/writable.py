"""Whether the writer may write the store, asked once when it opens it.

Without this, a daemon given the readers' role (or a store on a read-only replica, or a file it may
not write) opened fine, then failed at its first cycle with a driver traceback, and a daemon went
on retrying every cycle. Asking first turns that into one line naming what is missing.
"""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy import Engine, text

from dashboard.store.schema import metadata

GUIDE = 'see the README, "A shared store on PostgreSQL"'

# The store's tables as this session resolves them (its search_path), their time partitions with
# them, each with its owner, and whether the session is a member of it and may create in its schema:
# only the owner may create, attach and drop the partitions (`ALTER TABLE ... OWNER TO` leaves the
# existing ones behind, and retention then failed every hour), so the writer must own them all.
_TABLES = text(
    "SELECT r.relname, pg_get_userbyid(r.relowner) AS owner,"
    " pg_has_role(current_user, r.relowner, 'USAGE') AS owned,"
    " has_schema_privilege(r.relnamespace, 'CREATE') AS creates,"
    " r.relnamespace::regnamespace::text AS schema"
    " FROM unnest(CAST(:names AS text[])) AS t(name)"
    " JOIN pg_class c ON c.oid = to_regclass(quote_ident(t.name))"
    " LEFT JOIN LATERAL pg_partition_tree(c.oid) p ON true"  # no row for a plain table
    " JOIN pg_class r ON r.oid = coalesce(p.relid, c.oid)"
    " ORDER BY p.level NULLS FIRST, r.relname"
)


class StoreNotWritable(RuntimeError):
    pass


def refuse_unwritable(engine: Engine) -> None:
    """Raise StoreNotWritable, with what is missing and how to fix it, unless the writer may write."""
    why = _postgres(engine) if engine.dialect.name == "postgresql" else _sqlite(engine)
    if why:
        raise StoreNotWritable(why)


def _postgres(engine: Engine) -> str | None:
    with engine.connect() as conn:
        role = conn.execute(text("SELECT current_user")).scalar()
        if conn.execute(text("SELECT current_setting('transaction_read_only')")).scalar() == "on":
            return (
                f"role {role} opens read-only transactions (a standby server, or"
                " default_transaction_read_only): the daemons need the primary and the store's owner"
            )
        tables = conn.execute(_TABLES, {"names": sorted(metadata.tables)}).all()
    not_owned = [t for t in tables if not t.owned]
    if not_owned:
        names = ", ".join(t.relname for t in not_owned[:3]) + (", ..." if len(not_owned) > 3 else "")
        owners = ", ".join(sorted({t.owner for t in not_owned}))
        return (
            f"role {role} does not own the store's tables ({names}; owner {owners}): every daemon"
            f" connects as the role that owns them, partitions included: REASSIGN OWNED BY the old"
            f" owner hands them all over ({GUIDE})"
        )
    schemas = sorted({t.schema for t in tables if not t.creates})
    if schemas:
        return (
            f"role {role} may not create tables in schema {', '.join(schemas)}, where each new day's"
            f" partition goes: GRANT CREATE ON SCHEMA {schemas[0]} TO {role} ({GUIDE})"
        )
    return None


def _sqlite(engine: Engine) -> str | None:
    database = engine.url.database
    if not database or database == ":memory:":
        return None
    path = Path(os.path.realpath(database))  # SQLite's journal goes beside the file a link names
    # The folder too: SQLite creates its journal and WAL files beside the store.
    for needed in (path, path.parent):
        if not os.access(needed, os.W_OK):
            return f"{needed} is not writable by this user (uid {os.getuid()}): the daemon writes the store"
    return None
