-- Counters for server_stats (14-16): pg_stat_bgwriter holds the checkpointer's too; pg_stat_wal.
SELECT b.checkpoints_timed, b.checkpoints_req AS checkpoints_requested,
       b.checkpoint_write_time AS checkpoint_write_ms, b.checkpoint_sync_time AS checkpoint_sync_ms,
       b.buffers_checkpoint, b.buffers_clean, b.buffers_backend, b.maxwritten_clean,
       extract(epoch FROM b.stats_reset)::bigint AS checkpointer_reset,
       extract(epoch FROM b.stats_reset)::bigint AS bgwriter_reset,
       w.wal_bytes, extract(epoch FROM w.stats_reset)::bigint AS wal_reset
  FROM pg_stat_bgwriter b, pg_stat_wal w
