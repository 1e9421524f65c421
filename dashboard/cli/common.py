"""What several commands share: opening the store the configuration names."""

from __future__ import annotations

from dashboard.core import config as config_mod
from dashboard.core.redaction import redact
from dashboard.store import Store


def open_store(config: config_mod.Config) -> Store:
    """The store, migrated to this version; a store that cannot be opened is a configuration error."""
    try:
        return Store(config.store)
    except Exception as err:
        raise config_mod.ConfigError(
            f"store {redact(config.store)}: cannot open: {redact(str(err))}"
        ) from None
