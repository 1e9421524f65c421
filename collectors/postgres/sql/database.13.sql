-- Per-database counters.
SELECT datname,
       xact_commit, xact_rollback, blks_read, blks_hit,
       tup_returned, tup_fetched, tup_inserted, tup_updated, tup_deleted,
       conflicts, temp_files, temp_bytes, deadlocks,
       extract(epoch FROM stats_reset)::bigint AS stats_reset
  FROM pg_stat_database
 WHERE datname IS NOT NULL AND datname NOT IN ('template0', 'template1')
