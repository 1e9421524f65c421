-- Per-database counters and size. Size needs CONNECT or pg_read_all_stats.
SELECT datname,
       xact_commit, xact_rollback, blks_read, blks_hit,
       tup_returned, tup_fetched, tup_inserted, tup_updated, tup_deleted,
       conflicts, temp_files, temp_bytes, deadlocks,
       extract(epoch FROM stats_reset)::bigint AS stats_reset,
       CASE WHEN has_database_privilege(datid, 'CONNECT')
              OR pg_has_role(current_user, 'pg_read_all_stats', 'USAGE')
            THEN pg_database_size(datid) END AS size_bytes
  FROM pg_stat_database
 WHERE datname IS NOT NULL AND datname NOT IN ('template0', 'template1')
