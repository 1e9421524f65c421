-- The relations the statement reaches (named, or read by those: a view's base tables, a policy's
-- subqueries, partitions and their parents) that LOCK TABLE can share-lock, and whether another
-- session holds on one of them, or on one of their indexes, a lock only schema changes take
-- (CREATE INDEX and REINDEX hold SHARE on the table; REINDEX, DROP and ALTER hold ACCESS
-- EXCLUSIVE): what that session commits while the plan runs would be planned unchecked, and a lock
-- on an index would hold the plan back until it does.
SELECT n.nspname, c.relname, EXISTS (
         SELECT FROM pg_locks l
         WHERE l.granted AND l.pid <> pg_backend_pid() AND l.locktype = 'relation'
           AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
           AND l.mode IN ('ShareLock', 'ShareRowExclusiveLock', 'ExclusiveLock', 'AccessExclusiveLock')
           AND (l.relation = c.oid OR l.relation IN (SELECT indexrelid FROM pg_index WHERE indrelid = c.oid))
       ) AS busy
FROM rels JOIN pg_class c ON c.oid = rels.oid JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p', 'v')
