-- Relations the statement reaches (or their indexes) that another session holds a lock on that
-- only schema changes take (CREATE INDEX and REINDEX hold SHARE on the table; REINDEX, DROP and
-- ALTER hold ACCESS EXCLUSIVE): what that session commits while the plan runs would be planned
-- unchecked, and a lock on an index would hold the plan back until it does.
SELECT DISTINCT l.relation::regclass::text
FROM pg_locks l
WHERE l.granted AND l.pid <> pg_backend_pid() AND l.locktype = 'relation'
  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND l.mode IN ('ShareLock', 'ShareRowExclusiveLock', 'ExclusiveLock', 'AccessExclusiveLock')
  AND (l.relation IN (SELECT oid FROM rels)
       OR l.relation IN (SELECT i.indexrelid FROM pg_index i JOIN rels ON i.indrelid = rels.oid))
