-- The settings health part: what sizing, autovacuum and checkpoints depend on, with its unit, where
-- it was set (default, configuration file, ...) and whether a changed value awaits a restart.
-- pg_monitor includes pg_read_all_settings, so superuser-only settings are readable too.
SELECT name, setting, unit, vartype, source, boot_val, reset_val, pending_restart
  FROM pg_settings
 WHERE name IN (
         'shared_buffers', 'effective_cache_size', 'work_mem', 'hash_mem_multiplier',
         'maintenance_work_mem', 'autovacuum_work_mem', 'max_connections', 'huge_pages',
         'autovacuum', 'autovacuum_max_workers', 'autovacuum_naptime',
         'autovacuum_vacuum_scale_factor', 'autovacuum_vacuum_threshold',
         'autovacuum_vacuum_insert_scale_factor', 'autovacuum_vacuum_insert_threshold',
         'autovacuum_analyze_scale_factor', 'autovacuum_analyze_threshold',
         'autovacuum_vacuum_cost_limit', 'autovacuum_vacuum_cost_delay', 'vacuum_cost_limit',
         'autovacuum_freeze_max_age', 'autovacuum_multixact_freeze_max_age',
         'log_autovacuum_min_duration', 'checkpoint_timeout', 'checkpoint_completion_target',
         'max_wal_size', 'min_wal_size', 'wal_buffers', 'random_page_cost', 'seq_page_cost',
         'effective_io_concurrency', 'maintenance_io_concurrency', 'jit', 'max_parallel_workers',
         'max_parallel_workers_per_gather', 'max_worker_processes', 'default_statistics_target',
         'temp_file_limit', 'statement_timeout', 'idle_in_transaction_session_timeout',
         'track_io_timing', 'shared_preload_libraries')
 ORDER BY name
