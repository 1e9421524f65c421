-- Client connections by state, plus those waiting on a lock.
SELECT coalesce(state, 'unknown') AS state,
       count(*) AS connections,
       count(*) FILTER (WHERE wait_event_type = 'Lock') AS waiting
  FROM pg_stat_activity
 WHERE backend_type = 'client backend'
 GROUP BY 1
