-- A value a column typically holds, to run a statement with $n compared with it: its most common
-- value, else the middle histogram bound. pg_stats shows only columns the role may read.
SELECT coalesce(
         (s.most_common_vals::text::text[])[1],
         (s.histogram_bounds::text::text[])[(array_length(s.histogram_bounds::text::text[], 1) + 1) / 2]
       )
FROM pg_catalog.pg_stats s
JOIN pg_catalog.pg_namespace n ON n.nspname = s.schemaname
JOIN pg_catalog.pg_class c ON c.relname = s.tablename AND c.relnamespace = n.oid
WHERE c.oid = ANY (%(relations)s::pg_catalog.oid[]) AND s.attname = %(column)s
ORDER BY s.inherited DESC
LIMIT 1
