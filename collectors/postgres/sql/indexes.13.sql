-- The indexes of the database the target connects to (pg_stat_user_indexes is per database): the
-- 100 largest, with their scans and size, so "unused" can be judged over weeks, not since the last
-- statistics reset. Sizes stat a file each: read every 15 minutes, as pgwatch does.
SELECT format('%I.%I', s.schemaname, s.indexrelname) AS index_name,
       format('%I.%I', s.schemaname, s.relname) AS table_name,
       s.idx_scan, s.idx_tup_read, s.idx_tup_fetch,
       pg_relation_size(s.indexrelid) AS size_bytes,
       i.indisunique AS is_unique, i.indisprimary AS is_primary
  FROM pg_stat_user_indexes s
  JOIN pg_index i ON i.indexrelid = s.indexrelid
 ORDER BY pg_relation_size(s.indexrelid) DESC, 1
 LIMIT 100
