-- The statements worth advising on: this database's top-level statements by total time, with
-- the collectors' own queries left out. Per-day rates come from the time since the last reset.
SELECT s.query,
       s.calls,
       s.mean_exec_time AS mean_ms,
       s.calls / greatest(extract(epoch FROM now() - %(since)s::timestamptz) / 86400, 1.0 / 24) AS calls_per_day
  FROM {pgss}.pg_stat_statements(true) s
 WHERE s.dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
   AND s.calls >= %(min_calls)s
   AND s.mean_exec_time >= %(min_mean_ms)s
   AND s.query NOT LIKE '/* observatory */%%'
   -- HypoPG's search for free OIDs, run inside the advisor's (marked) hypopg_create_index() call
   -- and recorded on its own under pg_stat_statements.track = all: a text no marker can lead.
   AND s.query <> 'SELECT max(oid) FROM pg_catalog.pg_class WHERE oid < $1'
 ORDER BY s.total_exec_time DESC
 LIMIT %(limit)s
