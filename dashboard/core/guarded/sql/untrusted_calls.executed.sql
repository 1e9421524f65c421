-- What running the statement (EXPLAIN ANALYZE) would run that a rollback does not undo. Besides
-- the planning check (untrusted_calls.final.sql, run first), refused are:
-- * any VOLATILE function (set_config, pg_terminate_backend, pg_advisory_lock, pg_notify, lo_export,
--   pg_stat_reset, dblink_exec ...) but those in %(volatile_ok)s, or a function a user wrote, that
--   runs with the statement: called by a name it writes (%(calls)s: constants left out), through an
--   operator, an aggregate or a cast of the types involved, or inside the stored expressions that
--   run with it (views and rules, row security policies, domain checks; for an INSERT, UPDATE or
--   MERGE, %(fills)s, the defaults, check constraints and index expressions of the tables it
--   changes). pg_depend records no dependency on a built-in: those expressions are read from
--   their stored trees;
-- * for a write or a delete (%(writes)s): the triggers of the tables it changes and of the tables
--   their foreign keys cascade to, and the rules that rewrite it (row locks fire neither);
-- * foreign tables it reads or writes: a foreign data wrapper does its work elsewhere (another
--   server, a program on the database host) where the rollback does not reach.
, written(oid) AS (
    SELECT oid FROM rels WHERE %(writes)s
  UNION  -- ON DELETE/UPDATE CASCADE, SET NULL, SET DEFAULT change the referencing tables too
    SELECT c.conrelid FROM written JOIN pg_constraint c ON c.contype = 'f' AND c.confrelid = written.oid
),
trees(tree, via) AS (
    SELECT w.ev_action::text, w.ev_class::regclass::text FROM pg_rewrite w JOIN rels ON w.ev_class = rels.oid
  UNION ALL
    SELECT w.ev_qual::text, w.ev_class::regclass::text FROM pg_rewrite w JOIN rels ON w.ev_class = rels.oid
  UNION ALL
    SELECT concat(p.polqual::text, p.polwithcheck::text), p.polrelid::regclass::text
    FROM pg_policy p JOIN rels ON p.polrelid = rels.oid
  UNION ALL
    SELECT c.conbin::text, c.contypid::regtype::text
    FROM pg_constraint c JOIN types ON c.contypid = types.oid WHERE c.conbin IS NOT NULL
  UNION ALL
    SELECT a.adbin::text, a.adrelid::regclass::text
    FROM pg_attrdef a JOIN written ON a.adrelid = written.oid WHERE %(fills)s
  UNION ALL
    SELECT c.conbin::text, c.conrelid::regclass::text
    FROM pg_constraint c JOIN written ON c.conrelid = written.oid WHERE %(fills)s AND c.conbin IS NOT NULL
  UNION ALL
    SELECT concat(i.indexprs::text, i.indpred::text), i.indexrelid::regclass::text
    FROM pg_index i JOIN written ON i.indrelid = written.oid WHERE %(fills)s
),
executed(fn, via) AS (
    SELECT p.oid, 'called' FROM pg_proc p WHERE p.proname = ANY (%(calls)s::text[])
  UNION ALL
    SELECT f.fn, 'aggregate ' || p.proname FROM pg_proc p JOIN pg_aggregate a ON a.aggfnoid = p.oid
    CROSS JOIN LATERAL unnest(ARRAY[a.aggtransfn, a.aggfinalfn, a.aggcombinefn, a.aggserialfn,
        a.aggdeserialfn, a.aggmtransfn, a.aggminvtransfn, a.aggmfinalfn]::oid[]) AS f(fn)
    WHERE p.proname = ANY (%(calls)s::text[])
  UNION ALL
    SELECT o.oprcode::oid, operators.via FROM operators JOIN pg_operator o ON o.oid = operators.oid
  UNION ALL
    SELECT c.castfunc, 'a cast to ' || c.casttarget::regtype FROM pg_cast c
    WHERE c.castfunc <> 0 AND (c.castsource IN (SELECT oid FROM types) OR c.casttarget IN (SELECT oid FROM types))
  UNION ALL  -- FuncExpr, Aggref, WindowFunc in a stored tree
    SELECT m[1]::oid, t.via FROM trees t
    CROSS JOIN LATERAL regexp_matches(t.tree, ':(?:funcid|aggfnoid|winfnoid) (\d+)', 'g') AS m
  UNION ALL  -- OpExpr and the like: stored trees keep the operator, not always its function
    SELECT o.oprcode::oid, t.via FROM trees t
    CROSS JOIN LATERAL regexp_matches(t.tree, ':opno (\d+)', 'g') AS m
    JOIN pg_operator o ON o.oid = m[1]::oid
  UNION ALL
    SELECT t.tgfoid, 'trigger ' || t.tgname || ' on ' || t.tgrelid::regclass
    FROM pg_trigger t JOIN written ON t.tgrelid = written.oid WHERE NOT t.tgisinternal
)
SELECT what, via FROM (
    SELECT DISTINCT ON (executed.fn) p.oid::regprocedure::text AS what, executed.via
    FROM executed JOIN pg_proc p ON p.oid = executed.fn
    WHERE p.oid IN (SELECT oid FROM untrusted)
       OR (p.provolatile = 'v' AND NOT (p.pronamespace = 'pg_catalog'::regnamespace
                                        AND p.proname = ANY (%(volatile_ok)s::text[])))
    ORDER BY executed.fn, executed.via
) AS functions
UNION ALL
SELECT 'rule ' || quote_ident(w.rulename) || ' on ' || w.ev_class::regclass, 'rewrites the write'
FROM pg_rewrite w JOIN written ON w.ev_class = written.oid WHERE w.ev_type <> '1'
UNION ALL
SELECT 'foreign table ' || c.oid::regclass, 'read elsewhere'
FROM rels JOIN pg_class c ON c.oid = rels.oid WHERE c.relkind = 'f'
