-- Index health: invalid indexes, typically left by a CREATE INDEX CONCURRENTLY or REINDEX
-- CONCURRENTLY that failed (duplicate values for a unique index, a cancel, a deadlock). The
-- planner never uses them, yet writes still maintain them once they are "ready".
SELECT n.nspname                                               AS schema_name,
       quote_ident(n.nspname) || '.' || quote_ident(t.relname) AS table_name,
       c.relname                                               AS index_name,
       quote_ident(n.nspname) || '.' || quote_ident(c.relname) AS index_sql,
       pg_get_indexdef(i.indexrelid)                           AS definition,
       pg_relation_size(i.indexrelid)                          AS size_bytes,
       i.indisunique                                           AS is_unique,
       i.indisready                                            AS is_ready,
       c.relkind = 'I'                                         AS is_partitioned,
       -- A build still running shows as invalid too; pg_monitor (pg_read_all_stats) sees all.
       EXISTS (SELECT 1 FROM pg_stat_progress_create_index p
                WHERE p.relid = i.indrelid)                    AS build_running
  FROM pg_index i
  JOIN pg_class c ON c.oid = i.indexrelid
  JOIN pg_class t ON t.oid = i.indrelid
  JOIN pg_namespace n ON n.oid = t.relnamespace
 WHERE NOT i.indisvalid
   AND n.nspname NOT IN ('pg_catalog', 'information_schema')
   AND n.nspname !~ '^pg_(toast|temp_)'
 ORDER BY table_name, index_name
