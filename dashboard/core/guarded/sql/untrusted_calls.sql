-- Functions written in a procedural language by a role that is not a superuser that planning a
-- statement could run. The planner folds IMMUTABLE calls with constant arguments, inlines SQL functions, and calls
-- operator and STABLE functions on constants while it estimates; views, defaults, constraints,
-- index expressions, policies, rules and statistics objects of the tables it reads are planned
-- with the statement, and so are casts and domain and range functions of the types involved.
-- Triggers are not: they run only when rows change, which planning never does.
--
-- %(names)s: every string of the statement's parse tree (identifiers, operator symbols, literals),
-- so a function reached as f(x), x.f or (row).f, or an operator in x OP ANY (...), is named there.
-- The relations it names are found by resolve_relations.sql (inlined below) along %(schemas)s.
WITH RECURSIVE
untrusted AS (
    -- Written by a role that is not a superuser (built-ins, and what a superuser or a trusted
    -- extension's script installed, are owned by one), in any language but C, which takes one.
    -- Membership of an extension is no mark of trust: its owner may add functions of their own.
    -- A superuser's function whose body names things along the caller's search_path (plain SQL or
    -- a procedural language, without a pinned search_path) counts too: run while planning, it
    -- would find a user's closer match for what it calls.
    SELECT p.oid, p.proname FROM pg_proc p JOIN pg_roles o ON o.oid = p.proowner
    WHERE p.prolang NOT IN (SELECT oid FROM pg_language WHERE lanname IN ('internal', 'c'))
      AND (NOT o.rolsuper OR (
        p.pronamespace NOT IN ('pg_catalog'::regnamespace, 'information_schema'::regnamespace)
        AND p.prosqlbody IS NULL
        AND NOT EXISTS (SELECT FROM unnest(p.proconfig) AS c WHERE c LIKE 'search\_path=%%')
      ))
),
rels(oid) AS (
    SELECT oid FROM ({resolved}) AS resolved WHERE oid IS NOT NULL
  UNION
    SELECT next.oid FROM rels
    CROSS JOIN LATERAL (
        SELECT d.refobjid AS oid  -- what a view's (or rule's) query reads
        FROM pg_rewrite w
        JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = w.oid
                        AND d.refclassid = 'pg_class'::regclass
        WHERE w.ev_class = rels.oid AND d.refobjid <> rels.oid
      UNION ALL
        SELECT d.refobjid  -- what a row-level security policy's subqueries read
        FROM pg_policy p
        JOIN pg_depend d ON d.classid = 'pg_policy'::regclass AND d.objid = p.oid
                        AND d.refclassid = 'pg_class'::regclass
        WHERE p.polrelid = rels.oid AND d.refobjid <> rels.oid
      UNION ALL
        SELECT i.inhrelid FROM pg_inherits i WHERE i.inhparent = rels.oid  -- partitions, children
      UNION ALL  -- and ancestors: a partition's constraint is built from its parents' keys
        SELECT i.inhparent FROM pg_inherits i WHERE i.inhrelid = rels.oid
    ) AS next
),
types(oid) AS (
    SELECT t.oid FROM pg_type t WHERE t.typname = ANY (%(names)s::text[])
  UNION
    SELECT a.atttypid FROM pg_attribute a JOIN rels ON a.attrelid = rels.oid WHERE a.attnum > 0
  UNION
    SELECT next.oid FROM types
    CROSS JOIN LATERAL (
        SELECT t.typbasetype AS oid FROM pg_type t WHERE t.oid = types.oid AND t.typbasetype <> 0
      UNION ALL
        SELECT t.typelem FROM pg_type t WHERE t.oid = types.oid AND t.typelem <> 0
      UNION ALL
        SELECT r.rngtypid FROM pg_range r WHERE r.rngmultitypid = types.oid
      UNION ALL
        SELECT r.rngsubtype FROM pg_range r WHERE r.rngtypid = types.oid
      UNION ALL  -- its array and multirange: their casts apply to it too
        SELECT t.typarray FROM pg_type t WHERE t.oid = types.oid AND t.typarray <> 0
      UNION ALL
        SELECT r.rngmultitypid FROM pg_range r WHERE r.rngtypid = types.oid
      UNION ALL  -- a composite's attributes: their domains, ranges and casts
        SELECT a.atttypid FROM pg_type t JOIN pg_attribute a ON a.attrelid = t.typrelid
        WHERE t.oid = types.oid AND t.typrelid <> 0 AND a.attnum > 0 AND NOT a.attisdropped
    ) AS next
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
    -- Named in the statement, or applied without being named: comparisons for sorts, joins, IN
    -- lists, LIKE. Any schema: an operator is found through search_path, or named with its schema.
    -- Only operators on built-in types or on the types involved: an operator on a type of her own
    -- that nothing here uses cannot be chosen, and would otherwise stop every statement.
    SELECT o.oid, 'operator ' || o.oprname FROM pg_operator o
    WHERE o.oprname = ANY (%(names)s::text[] || ARRAY['=', '<>', '<', '>', '<=', '>=', '~~', '~~*', '!~~', '!~~*'])
      AND (o.oprleft IN (SELECT oid FROM types) OR o.oprright IN (SELECT oid FROM types)
           OR (o.oprleft < 16384 AND o.oprright < 16384))
  UNION
    SELECT d.refobjid, o.via FROM objects o JOIN pg_depend d ON d.classid = o.classid AND d.objid = o.objid
    WHERE d.refclassid = 'pg_operator'::regclass
  UNION  -- the estimators call an operator's commutator and negator too
    SELECT next.oid, operators.via FROM operators JOIN pg_operator o ON o.oid = operators.oid
    CROSS JOIN LATERAL unnest(ARRAY[o.oprcom::oid, o.oprnegate::oid]) AS next(oid)
    WHERE next.oid <> 0
),
calls(fn, via) AS (
    SELECT u.oid, 'called' FROM untrusted u WHERE u.proname = ANY (%(names)s::text[])
  UNION ALL  -- an aggregate of her own is C-free only by name: its support functions are hers
    SELECT f.fn, 'aggregate ' || p.proname FROM pg_proc p JOIN pg_aggregate a ON a.aggfnoid = p.oid
    CROSS JOIN LATERAL unnest(ARRAY[a.aggtransfn, a.aggfinalfn, a.aggcombinefn, a.aggserialfn,
        a.aggdeserialfn, a.aggmtransfn, a.aggminvtransfn, a.aggmfinalfn]::oid[]) AS f(fn)
    WHERE p.proname = ANY (%(names)s::text[])
  UNION ALL
    SELECT f.fn, operators.via FROM operators JOIN pg_operator o ON o.oid = operators.oid
    CROSS JOIN LATERAL unnest(ARRAY[o.oprcode::oid, o.oprrest::oid, o.oprjoin::oid]) AS f(fn)
  UNION ALL
    SELECT d.refobjid, o.via FROM objects o JOIN pg_depend d ON d.classid = o.classid AND d.objid = o.objid
    WHERE d.refclassid = 'pg_proc'::regclass
  UNION ALL
    SELECT c.castfunc, 'a cast to ' || c.casttarget::regtype FROM pg_cast c
    WHERE c.castfunc <> 0 AND (c.castsource IN (SELECT oid FROM types) OR c.casttarget IN (SELECT oid FROM types))
)
{final}
