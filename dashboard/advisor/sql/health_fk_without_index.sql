-- Index health: foreign keys whose referencing columns do not lead any valid index on the
-- referencing table, on tables with at least min_rows rows. Without one, every DELETE (or key
-- UPDATE) on the referenced table scans the referencing table to check for rows that point at it.
-- The leading columns may come in any order: the check looks the key up by equality on all of them.
WITH fk AS (
    SELECT con.oid,
           con.conname,
           con.conrelid,
           con.conkey,
           n.nspname,
           quote_ident(n.nspname) || '.' || quote_ident(t.relname)   AS table_name,
           quote_ident(pn.nspname) || '.' || quote_ident(p.relname)  AS parent_name,
           -- reltuples is -1 until the first VACUUM or ANALYZE: fall back to the live count.
           CASE WHEN t.reltuples >= 0 THEN t.reltuples::bigint
                ELSE coalesce(s.n_live_tup, 0) END                  AS table_rows,
           pg_relation_size(t.oid)                                  AS table_bytes,
           (SELECT quote_ident(pcn.nspname) || '.' || quote_ident(pc.relname)
              FROM pg_inherits inh
              JOIN pg_class pc ON pc.oid = inh.inhparent
              JOIN pg_namespace pcn ON pcn.oid = pc.relnamespace
             WHERE inh.inhrelid = t.oid AND t.relispartition)        AS partition_of
      FROM pg_constraint con
      JOIN pg_class t ON t.oid = con.conrelid
      JOIN pg_namespace n ON n.oid = t.relnamespace
      JOIN pg_class p ON p.oid = con.confrelid
      JOIN pg_namespace pn ON pn.oid = p.relnamespace
      LEFT JOIN pg_stat_user_tables s ON s.relid = t.oid
     WHERE con.contype = 'f'
       -- Plain tables and partitions; a partitioned parent holds no rows and its FK is checked
       -- through each partition's own copy of the constraint.
       AND t.relkind = 'r'
       AND n.nspname NOT IN ('pg_catalog', 'information_schema')
       AND n.nspname !~ '^pg_(toast|temp_)'
)
SELECT fk.nspname        AS schema_name,
       fk.table_name,
       fk.conname        AS constraint_name,
       fk.parent_name,
       fk.table_rows,
       fk.table_bytes,
       fk.partition_of,
       ARRAY(SELECT quote_ident(a.attname)
               FROM unnest(fk.conkey) WITH ORDINALITY AS k(attnum, ord)
               JOIN pg_attribute a ON a.attrelid = fk.conrelid AND a.attnum = k.attnum
              ORDER BY k.ord)  AS columns,
       pg_get_constraintdef(fk.oid) AS definition
  FROM fk
 WHERE fk.table_rows >= %(min_rows)s
   AND NOT EXISTS (
        SELECT 1
          FROM pg_index i
          JOIN pg_class ic ON ic.oid = i.indexrelid
          JOIN pg_am am ON am.oid = ic.relam
         WHERE i.indrelid = fk.conrelid
           AND i.indisvalid
           AND i.indpred IS NULL     -- a partial index serves only some lookups
           AND (am.amname = 'btree' OR (am.amname = 'hash' AND cardinality(fk.conkey) = 1))
           AND i.indnkeyatts >= cardinality(fk.conkey)
           -- The first n key columns are exactly the FK's n columns (expressions are attnum 0).
           AND (string_to_array(i.indkey::text, ' ')::int2[])[1:cardinality(fk.conkey)]
               @> fk.conkey
   )
 ORDER BY fk.table_rows DESC, fk.table_name, fk.conname
