-- The sessions health part (collectors/postgres/health/sessions.py): one row.
-- `clients`: client sessions per database, user and application, each combination with how many are
-- active, idle in a transaction (and the oldest such transaction), running long or blocked; the
-- part keeps the largest combinations as series.
-- `sessions`: the sessions worth naming now, at most 50 of each kind (blocked, running long, idle in
-- a transaction; the oldest first), plus every session that blocks another, whatever it is.
-- The observatory's own sessions and the server's own processes are left out, except as blockers.
-- pg_blocking_pids() takes the lock manager's locks for a moment: only sessions waiting on a lock
-- call it. "Long" is observatory.long_running_s if the role or database sets it, else 60 s (PgHero).
WITH a AS MATERIALIZED (
  SELECT pid, datname, usename, application_name AS application, host(client_addr) AS client,
         backend_type, state, wait_event_type, wait_event, left(query, 2000) AS query,
         extract(epoch FROM now() - xact_start)::float8 AS xact_s,
         extract(epoch FROM now() - query_start)::float8 AS query_s,
         extract(epoch FROM now() - state_change)::float8 AS state_s,
         CASE WHEN wait_event_type = 'Lock' THEN pg_blocking_pids(pid) END AS blocked_by
    FROM pg_stat_activity
   WHERE pid <> pg_backend_pid()
), setting AS (
  SELECT coalesce(CASE WHEN current_setting('observatory.long_running_s', true) ~ '^\s*[0-9]+(\.[0-9]+)?\s*$'
                       THEN current_setting('observatory.long_running_s', true)::float8 END, 60) AS long_s
), c AS MATERIALIZED (  -- client sessions, not the observatory's
  SELECT a.*,
         coalesce(cardinality(blocked_by), 0) > 0 AS blocked,
         state = 'active' AND query_s > (SELECT long_s FROM setting) AS long_running,
         state LIKE 'idle in transaction%' AS idle_tx
    FROM a
   WHERE backend_type = 'client backend'
     -- The observatory's own, by name and role: another role naming itself so is not hidden.
     AND NOT (usename = current_user
              AND application IN ('observatory', 'observatory-advisor', 'observatory-investigate'))
), picked AS (
  (SELECT pid FROM c WHERE blocked ORDER BY query_s DESC NULLS LAST LIMIT 50)
  UNION (SELECT pid FROM c WHERE long_running ORDER BY query_s DESC NULLS LAST LIMIT 50)
  UNION (SELECT pid FROM c WHERE idle_tx ORDER BY xact_s DESC NULLS LAST LIMIT 50)
  UNION (SELECT DISTINCT unnest(blocked_by) FROM c WHERE blocked)
)
SELECT (SELECT long_s FROM setting) AS long_running_s,
       (SELECT coalesce(json_agg(g), '[]') FROM (
          SELECT coalesce(datname, '') AS datname, coalesce(usename, '') AS usename, application,
                 count(*) AS connections,
                 count(*) FILTER (WHERE state = 'active') AS active,
                 count(*) FILTER (WHERE idle_tx) AS idle_in_transaction,
                 max(xact_s) FILTER (WHERE idle_tx) AS idle_in_transaction_oldest_s,
                 count(*) FILTER (WHERE long_running) AS long_running,
                 count(*) FILTER (WHERE blocked) AS blocked
            FROM c GROUP BY 1, 2, 3) g) AS clients,
       (SELECT coalesce(json_agg(s), '[]') FROM (
          SELECT pid, datname, usename, application, client, backend_type, state, wait_event_type,
                 wait_event, query, xact_s, query_s, state_s, coalesce(blocked_by, ARRAY[]::int[]) AS blocked_by
            FROM a WHERE pid IN (SELECT pid FROM picked)) s) AS sessions
