-- Per schema of the database's own relations: how many the role cannot read, a few of their names
-- and their owners (for ALTER DEFAULT PRIVILEGES). EXPLAIN checks SELECT on every relation it plans.
SELECT n.nspname AS schema,
       count(*) AS unreadable,
       (array_agg(c.relname::text ORDER BY c.relname))[1:3] AS examples,
       array_agg(DISTINCT pg_get_userbyid(c.relowner)) AS owners
  FROM pg_class c
  JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f')
   AND n.nspname <> 'information_schema' AND n.nspname !~ '^pg_'
   AND NOT EXISTS (SELECT FROM pg_depend d  -- an extension's own (hypopg_list_indexes): not the workload's
                    WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
   AND NOT (has_schema_privilege(n.oid, 'USAGE') AND has_table_privilege(c.oid, 'SELECT'))
 GROUP BY n.nspname
 ORDER BY count(*) DESC, n.nspname
