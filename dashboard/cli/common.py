"""What several commands share: opening the store the configuration names, to write it or to read it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from dashboard.core import config as config_mod
from dashboard.core.redaction import redact
from dashboard.store import Store
from dashboard.store.writable import refuse_unwritable

if TYPE_CHECKING:
    from dashboard.analysis.reader import Reader


def open_store(config: config_mod.Config, *, collect: bool = False) -> Store:
    """The store, migrated to this version (the commands that write it); a store that cannot be
    opened is a configuration error. `collect`: also one the collectors may not write (the readers'
    role, a standby), said before the first cycle rather than as a driver's error at its INSERT;
    `serve` migrates only, and may run as the readers' role."""
    try:
        store = Store(config.store)
    except Exception as err:
        raise store_error(config, "cannot open", err) from None
    if collect:
        try:
            refuse_unwritable(store.engine)
        except Exception as err:
            store.close()
            raise store_error(config, "cannot collect into it", err) from None
    return store


def open_reader(config: config_mod.Config) -> Reader:
    """The store read-only, through the analyses' Reader (the commands that only read it): nothing
    is created or migrated, a store nobody wrote yet reads as empty; a store that cannot be read is
    a configuration error."""
    from dashboard.analysis.reader import Reader  # pandas: only for the commands that read

    try:
        return Reader.open(config)
    except Exception as err:
        raise store_error(config, "cannot open", err) from None


def store_error(config: config_mod.Config, what: str, err: BaseException) -> config_mod.ConfigError:
    """One line: the store (without its password), `what` went wrong and the driver's message, its
    lines joined and SQLAlchemy's link to its docs left out."""
    lines = [line.strip() for line in str(err).splitlines()]
    reason = " ".join(line for line in lines if line and not line.startswith("(Background on this error"))
    return config_mod.ConfigError(f"store {redact(config.store)}: {what}: {redact(reason)}")
