-- Counters for server_stats (13): pg_stat_bgwriter holds the checkpointer's too. No pg_stat_wal
-- before 14: the WAL position (never reset) counts the bytes written; a replica writes none of
-- its own, and pg_current_wal_lsn() raises there.
SELECT b.checkpoints_timed, b.checkpoints_req AS checkpoints_requested,
       b.checkpoint_write_time AS checkpoint_write_ms, b.checkpoint_sync_time AS checkpoint_sync_ms,
       b.buffers_checkpoint, b.buffers_clean, b.buffers_backend, b.maxwritten_clean,
       extract(epoch FROM b.stats_reset)::bigint AS checkpointer_reset,
       extract(epoch FROM b.stats_reset)::bigint AS bgwriter_reset,
       CASE WHEN NOT pg_is_in_recovery() THEN pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0') END AS wal_bytes,
       NULL::bigint AS wal_reset
  FROM pg_stat_bgwriter b
