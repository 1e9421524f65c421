-- The tables of the database the target connects to (pg_stat_user_tables is per database): the
-- 50 largest, with their scans, row changes, live and dead rows, last (auto)vacuum and analyze,
-- sizes (table, indexes, TOAST) and cache reads. Sizes stat every file of a table: read every
-- 5 minutes, as pgwatch does.
WITH t AS (
    SELECT s.relid,
           format('%I.%I', s.schemaname, s.relname) AS table_name,
           s.seq_scan, s.seq_tup_read, coalesce(s.idx_scan, 0) AS idx_scan,
           s.n_tup_ins, s.n_tup_upd, s.n_tup_del, s.n_tup_hot_upd,
           s.n_live_tup, s.n_dead_tup, s.n_mod_since_analyze,
           extract(epoch FROM greatest(s.last_vacuum, s.last_autovacuum))::bigint AS vacuumed,
           extract(epoch FROM greatest(s.last_analyze, s.last_autoanalyze))::bigint AS analyzed,
           s.vacuum_count + s.autovacuum_count AS vacuums,
           pg_total_relation_size(s.relid) AS total_bytes
      FROM pg_stat_user_tables s
)
SELECT t.table_name, t.seq_scan, t.seq_tup_read, t.idx_scan, t.n_tup_ins, t.n_tup_upd, t.n_tup_del,
       t.n_tup_hot_upd, t.n_live_tup, t.n_dead_tup, t.n_mod_since_analyze, t.vacuumed, t.analyzed,
       t.vacuums, t.total_bytes,
       pg_relation_size(t.relid) AS table_bytes,
       pg_indexes_size(t.relid) AS index_bytes,
       coalesce(pg_total_relation_size(c.reltoastrelid), 0) AS toast_bytes,
       age(c.relfrozenxid) AS xid_age,
       io.heap_blks_read, io.heap_blks_hit,
       current_database() AS datname
  FROM t
  JOIN pg_class c ON c.oid = t.relid
  LEFT JOIN pg_statio_user_tables io ON io.relid = t.relid
 WHERE c.relkind <> 'p'  -- a partitioned table has no storage (and relfrozenxid 0): its partitions do
 ORDER BY t.total_bytes DESC, t.table_name
 LIMIT 50
