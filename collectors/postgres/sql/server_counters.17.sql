-- Counters for server_stats (17+): pg_stat_checkpointer holds the checkpoint counters
-- pg_stat_bgwriter had, and buffers_backend is gone (pg_stat_io counts writes per backend type).
SELECT k.num_timed AS checkpoints_timed, k.num_requested AS checkpoints_requested,
       k.write_time AS checkpoint_write_ms, k.sync_time AS checkpoint_sync_ms,
       k.buffers_written AS buffers_checkpoint, b.buffers_clean, NULL::bigint AS buffers_backend,
       b.maxwritten_clean, extract(epoch FROM k.stats_reset)::bigint AS checkpointer_reset,
       extract(epoch FROM b.stats_reset)::bigint AS bgwriter_reset,
       w.wal_bytes, extract(epoch FROM w.stats_reset)::bigint AS wal_reset
  FROM pg_stat_checkpointer k, pg_stat_bgwriter b, pg_stat_wal w
