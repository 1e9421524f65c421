-- Counters only (pg_stat_statements(false) leaves the query text file alone), and only of the
-- entries that moved. The collector sends back the signature each entry had last cycle (a hash of
-- its key and calls + plans; the int8[] parameter sigs). An entry whose signature is among them has
-- not run since: it is neither sent nor decoded, which is most of the cost of a 5,000-entry cycle.
-- Rows with only sent_sig set are signatures no entry has any more: those entries moved or vanished
-- (evicted, reset). The array goes through a sub-select so the planner hashes it, not the entries.
-- Entries of other users read as queryid NULL without pg_read_all_stats: they are skipped.
SELECT s.queryid, s.dbid, s.userid, s.toplevel,
       s.calls, s.total_exec_time, s.total_plan_time, s.rows,
       s.shared_blks_hit, s.shared_blks_read, s.shared_blks_dirtied, s.shared_blks_written,
       s.temp_blks_read, s.temp_blks_written, s.read_time, s.write_time, s.wal_bytes,
       s.min_exec_time, s.max_exec_time, s.mean_exec_time, s.stddev_exec_time, s.stats_since,
       d.datname, r.rolname, s.sig, p.sig AS sent_sig
  FROM (SELECT queryid, dbid, userid, true AS toplevel,
               calls, total_exec_time, total_plan_time, rows,
               shared_blks_hit, shared_blks_read, shared_blks_dirtied, shared_blks_written,
               temp_blks_read, temp_blks_written,
               blk_read_time AS read_time, blk_write_time AS write_time, wal_bytes::float8 AS wal_bytes,
               min_exec_time, max_exec_time, mean_exec_time, stddev_exec_time,
               NULL::bigint AS stats_since,
               hashint8extended(calls + plans,
                                hashint8extended((dbid::int8 << 32) | userid::int8, queryid)) AS sig
          FROM {pgss}.pg_stat_statements(false)
         WHERE queryid IS NOT NULL) s
  FULL JOIN unnest((SELECT %(sigs)s::int8[])) AS p(sig) ON p.sig = s.sig
  LEFT JOIN pg_database d ON d.oid = s.dbid
  LEFT JOIN pg_roles r ON r.oid = s.userid
 WHERE s.sig IS NULL OR p.sig IS NULL
