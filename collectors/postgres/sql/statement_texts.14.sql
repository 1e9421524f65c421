SELECT s.queryid, s.dbid, s.userid, s.toplevel, s.query
  FROM {pgss}.pg_stat_statements(true) s
 WHERE s.queryid = ANY(%(queryids)s)
