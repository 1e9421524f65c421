-- The wait sampler (collectors/postgres/waits.py): one row, every `health.waits` (5 s) between the
-- cycles, so it must stay cheap: one pass over pg_stat_activity, pg_blocking_pids() only for the
-- sessions waiting on a lock (it takes the lock manager's locks for a moment).
-- `waits`: the active sessions per database and wait event; no event is "CPU" (running, or a wait
-- PostgreSQL does not instrument), as Performance Insights and pg_wait_sampling count it.
-- `locks`: every session waiting on a lock held by another, and every session it waits for.
-- The observatory's own sessions are left out of `waits`, by name and role (as sessions.13.sql).
-- `wait_start`: when a waiting session's lock wait began (pg_locks.waitstart, 14+; else NULL, and
-- its statement's start stands for it), read only when someone waits.
WITH a AS MATERIALIZED (
  SELECT pid, datname, usename, application_name AS application, state, wait_event_type,
         wait_event, query, query_start, xact_start, backend_start,
         CASE WHEN wait_event_type = 'Lock' THEN pg_blocking_pids(pid) END AS blocked_by
    FROM pg_stat_activity
   WHERE pid <> pg_backend_pid()
)
, lw AS MATERIALIZED (
  {lock_waits}
)
SELECT extract(epoch FROM now())::float8 AS now,
       (SELECT coalesce(json_agg(w), '[]') FROM (
          SELECT coalesce(datname, '') AS datname, coalesce(wait_event_type, 'CPU') AS type,
                 coalesce(wait_event, 'CPU') AS event, count(*) AS sessions
            FROM a
           WHERE state = 'active'
             AND NOT (usename = current_user
                      AND application IN ('observatory', 'observatory-advisor', 'observatory-investigate'))
           GROUP BY 1, 2, 3) w) AS waits,
       (SELECT coalesce(json_agg(s), '[]') FROM (
          SELECT pid, datname, usename, application, state, left(query, 500) AS query,
                 coalesce(blocked_by, ARRAY[]::int[]) AS blocked_by,
                 extract(epoch FROM query_start)::float8 AS query_start,
                 extract(epoch FROM (SELECT lw.waitstart FROM lw WHERE lw.pid = a.pid))::float8 AS wait_start,
                 extract(epoch FROM xact_start)::float8 AS xact_start,
                 extract(epoch FROM backend_start)::float8 AS backend_start
            FROM a
           WHERE cardinality(blocked_by) > 0
              OR pid IN (SELECT unnest(blocked_by) FROM a WHERE cardinality(blocked_by) > 0)) s) AS locks
