-- A relation (found by the session along the statement's search_path), with its size estimate
-- and, for a view, its definition to expand.
SELECT c.oid, n.nspname AS schema, c.relname AS name, c.relkind AS kind,
       greatest(c.reltuples, 0)::bigint AS reltuples,
       CASE WHEN c.relkind IN ('v', 'm') THEN pg_get_viewdef(c.oid) END AS viewdef,
       n.nspname IN ('pg_catalog', 'information_schema') OR starts_with(n.nspname, 'pg_toast') AS system,
       coalesce(s.n_tup_ins + s.n_tup_upd + s.n_tup_del, 0) AS writes,
       coalesce(s.n_tup_hot_upd, 0) AS hot_updates,
       extract(epoch FROM coalesce(
           (SELECT stats_reset FROM pg_stat_database WHERE datname = current_database()),
           pg_postmaster_start_time()))::bigint AS stats_since
  FROM pg_class c
  JOIN pg_namespace n ON n.oid = c.relnamespace
  LEFT JOIN pg_stat_all_tables s ON s.relid = c.oid
 WHERE c.oid = %(oid)s
