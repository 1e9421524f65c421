-- What the catalog says about the relations a plan reads, by the names the plan gives them
-- (%(names)s: 'schema.table' with VERBOSE; a bare 'table' matches when one relation alone has that
-- name), and the memory settings a plan's sorts and hashes live with. One row even with no relation.
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
           greatest(s.last_analyze, s.last_autoanalyze) AS last_analyze  -- greatest() skips NULLs
      FROM resolved r
      JOIN pg_class c ON c.oid = r.oid
      LEFT JOIN pg_stat_all_tables s ON s.relid = c.oid
)
SELECT (SELECT setting::bigint FROM pg_settings WHERE name = 'work_mem') AS work_mem_kb,
       (SELECT setting::float8 FROM pg_settings WHERE name = 'hash_mem_multiplier') AS hash_mem_multiplier,
       now() AS now,
       t.*
  FROM (SELECT 1) AS one
  LEFT JOIN tables t ON true
 ORDER BY t.relation
