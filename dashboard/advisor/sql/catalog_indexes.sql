-- Existing indexes of a table: key columns or expressions in order, predicate, validity.
SELECT i.indexrelid::regclass::text AS name, am.amname AS method, i.indisunique AS unique,
       i.indisprimary AS primary, i.indisvalid AS valid,
       pg_get_expr(i.indpred, i.indrelid) AS predicate,
       array(SELECT pg_get_indexdef(i.indexrelid, k + 1, true)
               FROM generate_subscripts(i.indkey, 1) AS k
              WHERE k < i.indnkeyatts
              ORDER BY k) AS keys,
       pg_get_indexdef(i.indexrelid) AS definition
  FROM pg_index i
  JOIN pg_class ic ON ic.oid = i.indexrelid
  JOIN pg_am am ON am.oid = ic.relam
 WHERE i.indrelid = %(oid)s
