-- 14 adds toplevel: the same text run at top level and inside a function are two entries.
SELECT s.queryid, s.dbid, s.userid, s.toplevel,
       s.calls, s.total_exec_time, s.total_plan_time, s.rows,
       s.shared_blks_hit, s.shared_blks_read, s.shared_blks_dirtied, s.shared_blks_written,
       s.temp_blks_read, s.temp_blks_written, s.blk_read_time, s.blk_write_time, s.wal_bytes::float8 AS wal_bytes,
       s.min_exec_time, s.max_exec_time, s.mean_exec_time, s.stddev_exec_time,
       NULL::bigint AS stats_since,
       d.datname, r.rolname
  FROM {pgss}.pg_stat_statements(false) s
  LEFT JOIN pg_database d ON d.oid = s.dbid
  LEFT JOIN pg_roles r ON r.oid = s.userid
 WHERE s.queryid IS NOT NULL
