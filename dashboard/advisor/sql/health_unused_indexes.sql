-- Index health: indexes with no scans since statistics began, that enforce nothing.
-- Unique, primary-key and exclusion indexes, and any index a constraint depends on (including
-- the referenced side of a foreign key), are left out: they are needed even if never scanned.
-- A partitioned index is judged as a whole (its partitions' scans and sizes summed); the
-- partitions' own copies cannot be dropped alone, so they are not listed.
-- Readable with pg_monitor: the catalogs, scan counters and sizes need no table privilege.
SELECT n.nspname                                               AS schema_name,
       quote_ident(n.nspname) || '.' || quote_ident(t.relname) AS table_name,
       c.relname                                               AS index_name,
       quote_ident(n.nspname) || '.' || quote_ident(c.relname) AS index_sql,
       c.relkind = 'I'                                         AS is_partitioned,
       pg_get_indexdef(i.indexrelid)                           AS definition,
       u.size_bytes,
       i.indexprs IS NOT NULL                                  AS has_expressions,
       (SELECT d.stats_reset FROM pg_stat_database d
         WHERE d.datname = current_database())                 AS stats_reset,
       pg_postmaster_start_time()                              AS postmaster_start
  FROM pg_index i
  JOIN pg_class c ON c.oid = i.indexrelid
  JOIN pg_class t ON t.oid = i.indrelid
  JOIN pg_namespace n ON n.oid = t.relnamespace
 CROSS JOIN LATERAL (
        SELECT coalesce(sum(pg_stat_get_numscans(leaf.relid)), 0)  AS scans,
               coalesce(sum(pg_relation_size(leaf.relid)), 0)::bigint AS size_bytes
          FROM (SELECT i.indexrelid AS relid WHERE c.relkind = 'i'
                UNION ALL
                SELECT p.relid FROM pg_partition_tree(i.indexrelid) p
                 WHERE c.relkind = 'I' AND p.isleaf) leaf
       ) u
 WHERE u.scans = 0
   AND NOT c.relispartition
   AND i.indisvalid                      -- invalid ones have their own check
   AND NOT i.indisunique
   AND NOT i.indisprimary
   AND NOT i.indisexclusion
   AND NOT EXISTS (SELECT 1 FROM pg_constraint con WHERE con.conindid = i.indexrelid)
   AND n.nspname NOT IN ('pg_catalog', 'information_schema')
   AND n.nspname !~ '^pg_(toast|temp_)'
   AND u.size_bytes >= %(min_bytes)s
 ORDER BY u.size_bytes DESC, table_name, index_name
