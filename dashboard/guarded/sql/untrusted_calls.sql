-- Functions a statement would make the planner able to run that are neither built in (pg_catalog,
-- information_schema) nor installed by an extension. The planner folds IMMUTABLE calls with constant
-- arguments, and estimates selectivity by calling operator functions and STABLE functions on
-- constants; views, defaults, constraints, index expressions, policies, rules and statistics objects
-- of the tables it reads are planned with the statement. Triggers are not: they run only when rows
-- change, which planning never does.
-- %(fn_schemas)s/%(fn_names)s: functions as written ('' schema: unqualified); likewise operators,
-- types (cast targets) and relations (as written, for to_regclass).
WITH RECURSIVE
rels(oid) AS (
    SELECT to_regclass(r)::oid FROM unnest(%(relations)s::text[]) AS r WHERE to_regclass(r) IS NOT NULL
  UNION
    SELECT next.oid FROM rels
    CROSS JOIN LATERAL (
        SELECT d.refobjid AS oid  -- what a view's (or rule's) query reads
        FROM pg_rewrite w
        JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = w.oid
                        AND d.refclassid = 'pg_class'::regclass
        WHERE w.ev_class = rels.oid AND d.refobjid <> rels.oid
      UNION ALL
        SELECT i.inhrelid FROM pg_inherits i WHERE i.inhparent = rels.oid  -- partitions, children
    ) AS next
),
types(oid) AS (
    SELECT t.oid FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
    JOIN unnest(%(type_schemas)s::text[], %(type_names)s::text[]) AS w(schema, name)
      ON t.typname = w.name AND (n.nspname = w.schema OR (w.schema = '' AND n.nspname = ANY (current_schemas(true))))
  UNION
    SELECT a.atttypid FROM pg_attribute a JOIN rels ON a.attrelid = rels.oid WHERE a.attnum > 0
),
objects(classid, objid, via) AS (
    SELECT 'pg_class'::regclass, oid, oid::regclass::text FROM rels
  UNION ALL SELECT 'pg_rewrite'::regclass, w.oid, w.ev_class::regclass::text FROM pg_rewrite w JOIN rels ON w.ev_class = rels.oid
  UNION ALL SELECT 'pg_attrdef'::regclass, a.oid, a.adrelid::regclass::text FROM pg_attrdef a JOIN rels ON a.adrelid = rels.oid
  UNION ALL SELECT 'pg_constraint'::regclass, c.oid, c.conrelid::regclass::text FROM pg_constraint c JOIN rels ON c.conrelid = rels.oid
  UNION ALL SELECT 'pg_class'::regclass, i.indexrelid, i.indexrelid::regclass::text FROM pg_index i JOIN rels ON i.indrelid = rels.oid
  UNION ALL SELECT 'pg_policy'::regclass, p.oid, p.polrelid::regclass::text FROM pg_policy p JOIN rels ON p.polrelid = rels.oid
  UNION ALL SELECT 'pg_statistic_ext'::regclass, s.oid, s.stxrelid::regclass::text FROM pg_statistic_ext s JOIN rels ON s.stxrelid = rels.oid
  UNION ALL SELECT 'pg_type'::regclass, oid, oid::regtype::text FROM types
  UNION ALL SELECT 'pg_constraint'::regclass, c.oid, c.contypid::regtype::text FROM pg_constraint c JOIN types ON c.contypid = types.oid
),
operators(oid, via) AS (
    SELECT o.oid, 'operator ' || o.oprname FROM pg_operator o JOIN pg_namespace n ON n.oid = o.oprnamespace
    JOIN unnest(%(op_schemas)s::text[], %(op_names)s::text[]) AS w(schema, name)
      ON o.oprname = w.name AND (n.nspname = w.schema OR (w.schema = '' AND n.nspname = ANY (current_schemas(true))))
  UNION ALL
    SELECT d.refobjid, o.via FROM objects o JOIN pg_depend d ON d.classid = o.classid AND d.objid = o.objid
    WHERE d.refclassid = 'pg_operator'::regclass
),
calls(fn, via) AS (
    SELECT p.oid, 'called' FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
    JOIN unnest(%(fn_schemas)s::text[], %(fn_names)s::text[]) AS w(schema, name)
      ON p.proname = w.name AND (n.nspname = w.schema OR (w.schema = '' AND n.nspname = ANY (current_schemas(true))))
  UNION ALL
    SELECT f.fn, operators.via FROM operators JOIN pg_operator o ON o.oid = operators.oid
    CROSS JOIN LATERAL unnest(ARRAY[o.oprcode::oid, o.oprrest::oid, o.oprjoin::oid]) AS f(fn)
  UNION ALL
    SELECT d.refobjid, o.via FROM objects o JOIN pg_depend d ON d.classid = o.classid AND d.objid = o.objid
    WHERE d.refclassid = 'pg_proc'::regclass
  UNION ALL
    SELECT c.castfunc, 'a cast to ' || c.casttarget::regtype FROM pg_cast c WHERE c.castfunc <> 0
)
SELECT DISTINCT ON (calls.fn)
       format('%%s.%%s(%%s)', p.pronamespace::regnamespace, quote_ident(p.proname),
              pg_get_function_identity_arguments(p.oid)) AS function,
       calls.via
FROM calls JOIN pg_proc p ON p.oid = calls.fn
WHERE p.pronamespace NOT IN ('pg_catalog'::regnamespace, 'information_schema'::regnamespace)
  AND NOT EXISTS (
    SELECT FROM pg_depend e
    WHERE e.classid = 'pg_proc'::regclass AND e.objid = p.oid AND e.deptype = 'e'
  )
ORDER BY calls.fn, calls.via
