-- Index health: pairs (candidate, cover) of valid indexes on the same table where the cover can
-- do everything the candidate does: same access method and predicate, the candidate's key columns
-- (or expressions) a prefix of the cover's with the same opclasses, collations and ordering
-- options, and the candidate's INCLUDE columns somewhere in the cover. Which one of a pair may be
-- dropped (constraints, uniqueness, exact duplicates) is decided by the caller.
WITH idx AS (
    SELECT i.indexrelid,
           i.indrelid,
           c.relam,
           n.nspname,
           c.relname,
           quote_ident(n.nspname) || '.' || quote_ident(t.relname)  AS table_name,
           quote_ident(n.nspname) || '.' || quote_ident(c.relname)  AS index_sql,
           pg_get_indexdef(i.indexrelid)                           AS definition,
           c.relkind = 'I'                                         AS is_partitioned,
           c.relispartition,
           -- A partitioned index has no storage of its own: its partitions' sizes summed.
           CASE WHEN c.relkind = 'I'
                THEN (SELECT coalesce(sum(pg_relation_size(p.relid)), 0)
                        FROM pg_partition_tree(i.indexrelid) p WHERE p.isleaf)
                ELSE pg_relation_size(i.indexrelid) END::bigint    AS size_bytes,
           i.indnkeyatts                                           AS nkey,
           -- One entry per column: its name, or the expression's text (pg_get_expr form).
           ARRAY(SELECT pg_get_indexdef(i.indexrelid, k, false)
                   FROM generate_series(1, i.indnkeyatts) k)        AS keys,
           ARRAY(SELECT pg_get_indexdef(i.indexrelid, k, false)
                   FROM generate_series(i.indnkeyatts + 1, i.indnatts) k) AS includes,
           -- The vectors are 0-based; their text form gives ordinary 1-based arrays.
           string_to_array(i.indclass::text, ' ')::oid[]           AS opclasses,
           string_to_array(i.indcollation::text, ' ')::oid[]       AS collations,
           string_to_array(i.indoption::text, ' ')::int2[]         AS options,
           coalesce(pg_get_expr(i.indpred, i.indrelid), '')        AS predicate,
           i.indisunique                                           AS is_unique,
           -- indnullsnotdistinct exists from PostgreSQL 15; NULL (so false) before.
           coalesce((to_jsonb(i) ->> 'indnullsnotdistinct')::boolean, false) AS nulls_not_distinct,
           (SELECT string_agg(quote_ident(con.conname), ', ' ORDER BY con.conname)
              FROM pg_constraint con
             WHERE con.conindid = i.indexrelid)                    AS constraints
      FROM pg_index i
      JOIN pg_class c ON c.oid = i.indexrelid
      JOIN pg_class t ON t.oid = i.indrelid
      JOIN pg_namespace n ON n.oid = t.relnamespace
     WHERE i.indisvalid
       AND i.indisready
       AND i.indislive
       AND n.nspname NOT IN ('pg_catalog', 'information_schema')
       AND n.nspname !~ '^pg_(toast|temp_)'
)
SELECT a.indexrelid      AS oid,
       a.nspname         AS schema_name,
       a.table_name,
       a.relname         AS index_name,
       a.index_sql,
       a.definition,
       a.size_bytes,
       a.is_partitioned,
       a.is_unique,
       a.constraints,
       -- Mutual cover: either one could go.
       a.keys = b.keys AND b.includes <@ a.includes AS exact,
       b.indexrelid      AS cover_oid,
       b.relname         AS cover_name,
       b.definition      AS cover_definition,
       b.is_unique       AS cover_unique,
       b.constraints     AS cover_constraints,
       b.relispartition  AS cover_attached,
       a.nulls_not_distinct = b.nulls_not_distinct AS same_nulls
  FROM idx a
  JOIN idx b
    -- A partition's copy of a partitioned index cannot be dropped alone; it may still cover.
    ON NOT a.relispartition
   AND b.indrelid = a.indrelid
   AND b.indexrelid <> a.indexrelid
   AND b.relam = a.relam
   AND b.predicate = a.predicate
   AND a.nkey <= b.nkey
   AND a.keys = b.keys[1:a.nkey]
   AND a.opclasses = b.opclasses[1:a.nkey]
   AND a.collations = b.collations[1:a.nkey]
   AND a.options = b.options[1:a.nkey]
   AND a.includes <@ (b.keys || b.includes)
 ORDER BY a.table_name, a.relname, b.relname
