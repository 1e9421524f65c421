-- Evictions (dealloc) and the time of the last full reset; the view exists from 14 on.
SELECT dealloc, extract(epoch FROM stats_reset)::float8 AS stats_reset  -- to the microsecond
  FROM {pgss}.pg_stat_statements_info
