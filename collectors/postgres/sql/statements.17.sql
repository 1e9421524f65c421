-- 17 renames blk_read_time/blk_write_time to shared_blk_*_time and adds stats_since, which also
-- goes into the signature: an entry reset alone or evicted and back never keeps its old signature.
-- Counters only (pg_stat_statements(false) leaves the query text file alone), and only of the
-- entries that moved. The collector sends the signature each entry had last cycle (a hash of its
-- key and calls + plans; the int8[] parameter sigs); an entry whose signature is among them has not
-- run since, so it is neither sent nor decoded: that is most of the cost of a 5,000-entry cycle.
-- Database and role names come from names.sql, cached by oid. Entries of other users read as
-- queryid NULL without pg_read_all_stats: they are skipped.
-- An anti-join drops the unchanged entries. The array goes through a sub-select so the planner
-- hashes it, not the entries, and the plan does not depend on the array: it is prepared once.
SELECT s.queryid, s.dbid, s.userid, s.toplevel,
       -- The 13 counters as one binary float8[]: the collector unpacks every row's at once.
       array_send(ARRAY[s.calls, s.total_exec_time, s.total_plan_time, s.rows,
                        s.shared_blks_hit, s.shared_blks_read, s.shared_blks_dirtied, s.shared_blks_written,
                        s.temp_blks_read, s.temp_blks_written, s.read_time, s.write_time, s.wal_bytes
                       ]::float8[]) AS counters,
       s.min_exec_time, s.max_exec_time, s.mean_exec_time, s.stddev_exec_time, s.stats_since, s.sig
  FROM (SELECT queryid, dbid, userid, toplevel,
               calls, total_exec_time, total_plan_time, rows,
               shared_blks_hit, shared_blks_read, shared_blks_dirtied, shared_blks_written,
               temp_blks_read, temp_blks_written,
               shared_blk_read_time AS read_time, shared_blk_write_time AS write_time, wal_bytes::float8 AS wal_bytes,
               min_exec_time, max_exec_time, mean_exec_time, stddev_exec_time,
               extract(epoch FROM stats_since)::bigint AS stats_since,
               hashint8extended(calls + plans,
                                hashint8extended((dbid::int8 << 32) | userid::int8,
                                                 queryid # toplevel::int::int8
                                                 # (extract(epoch FROM stats_since) * 1e6)::int8)) AS sig
          FROM {pgss}.pg_stat_statements(false)
         WHERE queryid IS NOT NULL) s
  LEFT JOIN unnest((SELECT %(sigs)s::int8[])) AS p(sig) ON p.sig = s.sig
 WHERE p.sig IS NULL
