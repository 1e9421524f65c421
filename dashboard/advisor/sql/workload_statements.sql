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
   -- the observatory's own (dashboard.core.records.is_own): marked, or caused but not markable
   AND left(s.query, length(%(own_marker)s)) <> %(own_marker)s
   AND s.query <> ALL(%(own_unmarked)s)
 ORDER BY s.total_exec_time DESC
 LIMIT %(limit)s
