-- The replication health part, one row. On a server that sends WAL (a primary, or a cascading
-- standby): each replica it streams to, and its replication slots with the WAL each one keeps.
-- On a standby: how far its replay is behind what it received, and whether it is receiving at all.
-- WAL positions are measured against pg_current_wal_lsn() on a primary; it fails during recovery,
-- where the WAL received (pg_last_wal_receive_lsn()) is the newest this server knows.
-- pg_monitor reads every column (pg_read_all_stats shows the replicas' and receiver's details).
WITH here AS (
    SELECT pg_is_in_recovery() AS in_recovery,
           CASE WHEN pg_is_in_recovery() THEN pg_last_wal_receive_lsn() ELSE pg_current_wal_lsn() END AS lsn
)
SELECT here.in_recovery,
       (SELECT coalesce(json_agg(r ORDER BY r.application_name, r.client_addr, r.pid), '[]')
          FROM (SELECT s.pid, s.application_name, host(s.client_addr) AS client_addr, s.state, s.sync_state,
                       extract(epoch FROM s.write_lag)::float8 AS write_lag_s,
                       extract(epoch FROM s.flush_lag)::float8 AS flush_lag_s,
                       extract(epoch FROM s.replay_lag)::float8 AS replay_lag_s,
                       pg_wal_lsn_diff(here.lsn, s.sent_lsn)::float8 AS unsent_bytes,
                       pg_wal_lsn_diff(here.lsn, s.replay_lsn)::float8 AS replay_bytes
                  FROM pg_stat_replication s) r) AS replicas,
       (SELECT coalesce(json_agg(sl ORDER BY sl.slot_name), '[]')
          FROM (SELECT slot_name, slot_type, database, active, temporary, wal_status,
                       pg_wal_lsn_diff(here.lsn, restart_lsn)::float8 AS retained_bytes,
                       safe_wal_size::float8 AS safe_wal_bytes,
                       greatest(age(xmin), age(catalog_xmin)) AS xmin_age
                  FROM pg_replication_slots) sl) AS slots,
       -- A standby that replayed all it received is not behind, however long the primary was idle.
       CASE WHEN NOT here.in_recovery THEN NULL
            WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0
            ELSE greatest(0, extract(epoch FROM now() - pg_last_xact_replay_timestamp()))::float8
       END AS replay_delay_s,
       CASE WHEN here.in_recovery
            THEN greatest(0, pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn()))::float8
       END AS replay_bytes,
       CASE WHEN here.in_recovery THEN pg_is_wal_replay_paused() END AS replay_paused,
       (SELECT status FROM pg_stat_wal_receiver) AS receiver_status
  FROM here
