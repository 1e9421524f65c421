"""What the PostgreSQL collector's health parts keep of "now" (`PostgresDetails`): the sessions
that block or run long, the replicas and slots, what is close to a limit, the settings. Series over
time go to the store as points; these are the last reading, for the pages and `observatory health`.

One module per part, filled in with its collector module under collectors/postgres/health/.
"""

from dashboard.core.health.replication import ReplicationNow
from dashboard.core.health.server import ServerNow
from dashboard.core.health.sessions import SessionsNow
from dashboard.core.health.settings import SettingsNow
from dashboard.core.health.snapshot import Snapshot
from dashboard.core.health.tables import TablesNow

__all__ = ["ReplicationNow", "ServerNow", "SessionsNow", "SettingsNow", "Snapshot", "TablesNow"]
