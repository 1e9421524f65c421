-- The relations the statement reaches (named, or read by those: a view's base tables, a policy's
-- subqueries, partitions and their parents) that LOCK TABLE can share-lock.
SELECT n.nspname, c.relname
FROM rels JOIN pg_class c ON c.oid = rels.oid JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p', 'v')
