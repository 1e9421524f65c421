-- HypoPG's schema when it is installed, and whether the role may call the two functions the advisor
-- calls (by signature, as GRANT names them).
SELECT n.nspname AS schema,
       has_schema_privilege(n.oid, 'USAGE') AS usage,
       array_agg(p.oid::regprocedure::text ORDER BY p.proname)
         FILTER (WHERE NOT has_function_privilege(p.oid, 'EXECUTE')) AS denied
  FROM pg_extension e
  JOIN pg_namespace n ON n.oid = e.extnamespace
  JOIN pg_proc p ON p.pronamespace = n.oid AND p.proname IN ('hypopg_create_index', 'hypopg_reset')
 WHERE e.extname = 'hypopg'
 GROUP BY n.nspname, n.oid
