-- Database and role names by oid, for the statements' dbid and userid. Read when an oid is new to
-- the collector and every few minutes (renames), rather than joined to every cycle's entries.
SELECT 'database' AS kind, oid::int8 AS oid, datname::text AS name FROM pg_database
UNION ALL
SELECT 'role', oid::int8, rolname::text FROM pg_roles
