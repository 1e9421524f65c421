-- Columns with the planner's statistics (pg_stats is readable for columns the role may select).
SELECT a.attname AS column, format_type(a.atttypid, a.atttypmod) AS type,
       s.null_frac, s.n_distinct, s.correlation,
       (s.most_common_freqs)[1] AS top_freq,
       s.most_common_vals::text AS mcv,
       s.most_common_freqs AS mcf
  FROM pg_attribute a
  LEFT JOIN pg_stats s ON s.schemaname = %(schema)s AND s.tablename = %(name)s AND s.attname = a.attname
 WHERE a.attrelid = %(oid)s AND a.attnum > 0 AND NOT a.attisdropped
 ORDER BY a.attnum
