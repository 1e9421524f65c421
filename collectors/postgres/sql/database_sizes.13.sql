-- Database sizes. pg_database_size() stats every file of the database (slow with many relations),
-- so this runs every few minutes, not every cycle. It needs CONNECT or pg_read_all_stats.
SELECT datname, pg_database_size(oid) AS size_bytes
  FROM pg_database
 WHERE datallowconn AND NOT datistemplate
   AND (has_database_privilege(oid, 'CONNECT') OR pg_has_role(current_user, 'pg_read_all_stats', 'USAGE'))
