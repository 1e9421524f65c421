-- What the catalog says about the relations a plan reads, by the names the plan gives them
-- (%(names)s: 'schema.table' with VERBOSE; a bare 'table' matches when one relation alone has that
-- name), the memory settings a plan's sorts and hashes live with, and whether this is a standby. One
-- row even with no relation.
WITH wanted AS (
    SELECT DISTINCT w.name FROM unnest(%(names)s::text[]) AS w(name) WHERE w.name IS NOT NULL
), splits AS (  -- every way to read 'schema.table': a schema or table name may hold a dot itself
    SELECT w.name, left(w.name, p - 1) AS nspname, substr(w.name, p + 1) AS relname
      FROM wanted w, generate_series(1, length(w.name)) AS p
     WHERE substr(w.name, p, 1) = '.'
), qualified AS (
    SELECT DISTINCT ON (s.name) s.name, c.oid
      FROM splits s
      JOIN pg_namespace n ON n.nspname = s.nspname
      JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = s.relname
     ORDER BY s.name, c.oid
), bare AS (
    SELECT w.name, min(c.oid) AS oid
      FROM wanted w
      JOIN pg_class c ON c.relname = w.name
     WHERE w.name NOT IN (SELECT name FROM qualified)
     GROUP BY w.name
    HAVING count(*) = 1
), resolved AS (
    SELECT name, oid FROM qualified
    UNION ALL
    SELECT name, oid FROM bare
), tables AS (
    SELECT r.name AS relation,
           greatest(c.reltuples, 0)::float8 AS reltuples,
           c.relpages::bigint AS pages,
           pg_relation_size(c.oid) AS size_bytes,
           s.n_live_tup AS live,
           s.n_mod_since_analyze AS modified_since_analyze,
           greatest(s.last_analyze, s.last_autoanalyze) AS last_analyze,  -- greatest() skips NULLs
           -- Analyzed, whatever the counters above say (they are empty after pg_stat_reset, a crash,
           -- and on a standby): its columns have statistics, or (14+, where -1 means never) ANALYZE
           -- or VACUUM found it empty. pg_stats shows what the role may read: pg_read_all_data.
           EXISTS (SELECT 1 FROM pg_stats p WHERE p.schemaname = n.nspname AND p.tablename = c.relname)
           OR (current_setting('server_version_num')::int >= 140000 AND c.reltuples = 0) AS has_statistics
      FROM resolved r
      JOIN pg_class c ON c.oid = r.oid
      JOIN pg_namespace n ON n.oid = c.relnamespace
      LEFT JOIN pg_stat_all_tables s ON s.relid = c.oid
)
SELECT (SELECT setting::bigint FROM pg_settings WHERE name = 'work_mem') AS work_mem_kb,
       (SELECT setting::float8 FROM pg_settings WHERE name = 'hash_mem_multiplier') AS hash_mem_multiplier,
       now() AS now,
       pg_is_in_recovery() AS in_recovery,
       t.*
  FROM (SELECT 1) AS one
  LEFT JOIN tables t ON true
 ORDER BY t.relation
