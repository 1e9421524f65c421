-- Query text of the entries named; reading text loads the whole text file, so this runs only
-- when new entries appeared.
SELECT s.queryid, s.dbid, s.userid, true AS toplevel, s.query
  FROM {pgss}.pg_stat_statements(true) s
 WHERE s.queryid = ANY(%(queryids)s)
