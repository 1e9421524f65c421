-- The indexes of the database the target connects to (pg_stat_user_indexes is per database),
-- largest first: the first 100 give their scans and size as series, so "unused" can be judged over
-- weeks, not since the last statistics reset; every one (up to 5,000) gives its identity, so an
-- index created since the last read is seen however small it is ("did the index help?"). Sizes
-- stat a file each, and ordering by size stats them all: read every 15 minutes, as pgwatch does.
SELECT current_database() AS datname,
       format('%I.%I', s.schemaname, s.indexrelname) AS index_name,
       format('%I.%I', s.schemaname, s.relname) AS table_name,
       s.idx_scan, s.idx_tup_read, s.idx_tup_fetch,
       pg_relation_size(s.indexrelid) AS size_bytes,
       i.indisunique AS is_unique, i.indisprimary AS is_primary, i.indisvalid AS is_valid,
       pg_get_indexdef(s.indexrelid) AS definition,
       -- Each key column or expression, without its ordering or operator class.
       ARRAY(SELECT pg_get_indexdef(s.indexrelid, k, true)
               FROM generate_series(1, i.indnkeyatts) AS k ORDER BY k) AS keys
  FROM pg_stat_user_indexes s
  JOIN pg_index i ON i.indexrelid = s.indexrelid
 ORDER BY pg_relation_size(s.indexrelid) DESC, 2
 LIMIT 5000
