-- waits.13.sql's lock wait starts (lw): none before 14 (pg_locks has no waitstart).
SELECT NULL::int AS pid, NULL::timestamptz AS waitstart WHERE false
