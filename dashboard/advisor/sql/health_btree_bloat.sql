-- Index health: B-tree bloat estimated from planner statistics; no index page is read.
-- A freshly built B-tree holds about (page size - headers) * fillfactor / tuple size tuples per
-- leaf page; the tuple size comes from pg_stats (avg_width, null_frac) of the indexed columns.
-- Pages beyond what reltuples needs that way are counted as bloat. Ignored, so it stays an
-- estimate: internal pages (well under a percent), deduplication (13+, makes indexes smaller than
-- estimated), compression, and padding between columns.
-- pg_stats shows only columns the role may SELECT, and index expressions only to the index's
-- owner: indexes whose widths stay unknown come back with no estimate.
WITH col AS (
    SELECT i.indexrelid,
           a.atttypid,
           -- Without readable statistics a NOT NULL fixed-width column is still exact: its width
           -- is the type's length and it has no NULLs. That covers most keys for pg_monitor.
           s.attname IS NOT NULL OR (ty.typlen > 0 AND a.attnotnull) AS has_stats,
           coalesce(s.null_frac, 0)                                 AS null_frac,
           coalesce(s.avg_width, ty.typlen)                         AS avg_width
      FROM pg_index i
      JOIN pg_class c ON c.oid = i.indexrelid
      JOIN pg_am am ON am.oid = c.relam AND am.amname = 'btree'
     CROSS JOIN LATERAL unnest(string_to_array(i.indkey::text, ' ')::int2[])
           WITH ORDINALITY AS k(attnum, pos)
     -- Plain columns have statistics under the table; expressions (attnum 0) under the index.
     CROSS JOIN LATERAL (SELECT CASE WHEN k.attnum <> 0 THEN i.indrelid ELSE i.indexrelid END,
                                CASE WHEN k.attnum <> 0 THEN k.attnum ELSE k.pos::int2 END)
           AS src(relid, attnum)
      JOIN pg_attribute a ON a.attrelid = src.relid AND a.attnum = src.attnum
      JOIN pg_type ty ON ty.oid = a.atttypid
      JOIN pg_class sc ON sc.oid = src.relid
      JOIN pg_namespace sn ON sn.oid = sc.relnamespace
      LEFT JOIN pg_stats s
        ON s.schemaname = sn.nspname
       AND s.tablename = sc.relname
       AND s.attname = a.attname
       AND NOT s.inherited
     WHERE c.relkind = 'i'
       AND i.indisvalid                  -- invalid ones have their own check
),
per_index AS (
    SELECT indexrelid,
           bool_and(has_stats)                                 AS has_stats,
           max(null_frac) > 0                                  AS has_nulls,
           sum((1 - null_frac::numeric) * avg_width)           AS data_width,
           bool_or(atttypid = 'pg_catalog.name'::regtype)      AS has_name_type
      FROM col
     GROUP BY indexrelid
),
sizes AS (
    SELECT p.*,
           n.nspname,
           t.relname                                           AS tablename,
           c.relname                                           AS indexname,
           c.relpages,
           c.reltuples,
           pg_relation_size(c.oid)                             AS size_bytes,
           current_setting('block_size')::int                  AS bs,
           -- MAXALIGN is 8 on every 64-bit build.
           CASE WHEN version() ~ '64-bit|x86_64|aarch64|ppc64|amd64|ia64|mingw32'
                THEN 8 ELSE 4 END                              AS maxalign,
           coalesce((SELECT o.option_value::int FROM pg_options_to_table(c.reloptions) o
                      WHERE o.option_name = 'fillfactor'), 90) AS fillfactor
      FROM per_index p
      JOIN pg_class c ON c.oid = p.indexrelid
      JOIN pg_index i ON i.indexrelid = p.indexrelid
      JOIN pg_class t ON t.oid = i.indrelid
      JOIN pg_namespace n ON n.oid = t.relnamespace
     WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
       AND n.nspname !~ '^pg_(toast|temp_)'
       AND c.relpages > 0
),
estimate AS (
    SELECT s.*,
           -- Tuple header: 8 bytes, plus a 4-byte null bitmap when a column has NULLs; the
           -- tuple is MAXALIGNed; each tuple also takes a 4-byte line pointer.
           ceil((ceil((8 + CASE WHEN has_nulls THEN 4 ELSE 0 END) / maxalign::numeric) * maxalign
                 + data_width) / maxalign) * maxalign + 4        AS tuple_bytes
      FROM sizes s
),
pages AS (
    SELECT e.*,
           -- +1 for the metapage.
           1 + ceil(reltuples::numeric / tuples_per_page)      AS expected_pages
      FROM (SELECT e.*,
                   -- 24-byte page header and 16-byte B-tree special space per page.
                   greatest(floor((bs - 24 - 16) * fillfactor / 100.0 / tuple_bytes), 1)
                                                               AS tuples_per_page
              FROM estimate e
             WHERE has_stats AND reltuples >= 0) e
)
SELECT s.nspname                                                  AS schema_name,
       quote_ident(s.nspname) || '.' || quote_ident(s.tablename)  AS table_name,
       s.indexname                                                AS index_name,
       quote_ident(s.nspname) || '.' || quote_ident(s.indexname)  AS index_sql,
       pg_get_indexdef(s.indexrelid)                              AS definition,
       s.size_bytes,
       s.has_name_type,
       s.has_stats AND s.reltuples >= 0                           AS estimated,
       (greatest(s.relpages - p.expected_pages, 0) * s.bs)::bigint AS bloat_bytes,
       round(100.0 * greatest(s.relpages - p.expected_pages, 0) / s.relpages, 1)::float8
                                                                  AS bloat_percent
  FROM sizes s
  LEFT JOIN pages p ON p.indexrelid = s.indexrelid
 WHERE (p.indexrelid IS NOT NULL
        AND greatest(s.relpages - p.expected_pages, 0) * s.bs >= %(min_bytes)s)
    OR (p.indexrelid IS NULL AND s.size_bytes >= %(min_bytes)s)
 ORDER BY bloat_bytes DESC NULLS LAST, table_name, index_name
