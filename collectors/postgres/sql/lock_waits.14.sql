-- waits.13.sql's lock wait starts: pg_locks takes the lock manager's locks, so it is read only
-- when a session waits on a lock (the EXISTS is evaluated once, before the scan).
SELECT pid, min(waitstart) AS waitstart
  FROM pg_locks
 WHERE NOT granted AND waitstart IS NOT NULL
   AND EXISTS (SELECT 1 FROM a WHERE wait_event_type = 'Lock')
 GROUP BY pid
