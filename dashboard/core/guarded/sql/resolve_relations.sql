-- Relations as a statement writes them ('orders', 'erp.orders', '"S"."Order"'), found as the
-- statement's own search_path would find them: %(schemas)s is that path's schemas, in order. The
-- session's own search_path is pg_catalog alone, so nothing here resolves to a user's function.
SELECT w.name, found.oid
  FROM unnest(%(relations)s::text[]) AS w(name)
  CROSS JOIN LATERAL parse_ident(w.name) AS p(parts)
  LEFT JOIN LATERAL (
    SELECT c.oid
      FROM pg_class c
      JOIN pg_namespace n ON n.oid = c.relnamespace
      LEFT JOIN unnest(%(schemas)s::text[]) WITH ORDINALITY AS s(nsp, ord) ON s.nsp = n.nspname
     WHERE c.relname = p.parts[cardinality(p.parts)]
       AND CASE WHEN cardinality(p.parts) = 1 THEN s.ord IS NOT NULL
                ELSE n.nspname = p.parts[cardinality(p.parts) - 1] END
     ORDER BY s.ord NULLS LAST
     LIMIT 1
  ) AS found ON true
