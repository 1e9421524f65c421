-- HypoPG's schema when it is installed, and whether the role may call it.
SELECT n.nspname AS schema,
       has_schema_privilege(n.oid, 'USAGE') AND has_function_privilege(p.oid, 'EXECUTE') AS usable
  FROM pg_extension e
  JOIN pg_namespace n ON n.oid = e.extnamespace
  JOIN pg_proc p ON p.pronamespace = n.oid AND p.proname = 'hypopg_create_index'
 WHERE e.extname = 'hypopg'
