-- What running the statement (EXPLAIN ANALYZE) would call that planning it would not, on top of
-- the functions others wrote (untrusted, as in untrusted_calls.final.sql): any VOLATILE function
-- named in it or reached through its relations, casts and operators (set_config,
-- pg_terminate_backend, pg_advisory_lock, pg_notify, dblink_exec ...: side effects a rolled-back
-- transaction does not undo, or settings it must not change) except those in %(volatile_ok)s; and,
-- for a statement that writes, the triggers of its tables that a user wrote.
, executed(fn, via) AS (
    SELECT p.oid, 'called' FROM pg_proc p WHERE p.proname = ANY (%(names)s::text[])
  UNION ALL
    SELECT fn, via FROM calls
  UNION ALL
    SELECT t.tgfoid, 'trigger ' || t.tgname || ' on ' || t.tgrelid::regclass
    FROM pg_trigger t JOIN rels ON t.tgrelid = rels.oid
    WHERE %(writes)s AND NOT t.tgisinternal
)
SELECT DISTINCT ON (executed.fn)
       format('%%s.%%s(%%s)', p.pronamespace::regnamespace, quote_ident(p.proname),
              pg_get_function_identity_arguments(p.oid)) AS function,
       executed.via
FROM executed JOIN pg_proc p ON p.oid = executed.fn
WHERE p.oid IN (SELECT oid FROM untrusted)
   OR (p.provolatile = 'v' AND NOT (p.pronamespace = 'pg_catalog'::regnamespace
                                    AND p.proname = ANY (%(volatile_ok)s::text[])))
ORDER BY executed.fn, executed.via
