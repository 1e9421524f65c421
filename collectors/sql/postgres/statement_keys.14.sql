-- The key of every entry, to find which vanished: read when pg_stat_statements_info counts new
-- evictions, or after a reset.
SELECT queryid, dbid, userid, toplevel
  FROM {pgss}.pg_stat_statements(false)
 WHERE queryid IS NOT NULL
