-- Existing indexes of a table: key columns or expressions in order, their operator classes (a
-- trigram index serves LIKE only through gin_trgm_ops / gist_trgm_ops), predicate, validity.
SELECT i.indexrelid::regclass::text AS name, am.amname AS method, i.indisunique AS unique,
       i.indisprimary AS primary, i.indisvalid AS valid,
       pg_get_expr(i.indpred, i.indrelid) AS predicate,
       array(SELECT pg_get_indexdef(i.indexrelid, k + 1, true)
               FROM generate_subscripts(i.indkey, 1) AS k
              WHERE k < i.indnkeyatts
              ORDER BY k) AS keys,
       array(SELECT opc.opcname
               FROM unnest(i.indclass::oid[]) WITH ORDINALITY AS c (oid, k)
               JOIN pg_opclass opc ON opc.oid = c.oid
              ORDER BY c.k) AS opclasses,
       pg_get_indexdef(i.indexrelid) AS definition
  FROM pg_index i
  JOIN pg_class ic ON ic.oid = i.indexrelid
  JOIN pg_am am ON am.oid = ic.relam
 WHERE i.indrelid = %(oid)s
