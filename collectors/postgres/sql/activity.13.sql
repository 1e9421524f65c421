-- Client connections by state, those waiting on a lock, how long the oldest has been in its state
-- (an old "idle in transaction" holds locks and stops vacuum), and max_connections to compare with.
SELECT coalesce(state, 'unknown') AS state,
       count(*) AS connections,
       count(*) FILTER (WHERE wait_event_type = 'Lock') AS waiting,
       coalesce(max(extract(epoch FROM now() - state_change)), 0)::float8 AS oldest_s,
       current_setting('max_connections')::int AS max_connections
  FROM pg_stat_activity
 WHERE backend_type = 'client backend'
 GROUP BY 1
