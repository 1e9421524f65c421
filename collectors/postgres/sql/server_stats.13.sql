-- The server_stats health part: the cumulative counters of the checkpointer, the background writer
-- and WAL (server_counters.<version>.sql: their views moved between versions), transaction ID age
-- per database, and in this database the tables with the oldest relfrozenxid and the sequences past
-- half their range. One row, the lists as JSON.
WITH seq AS (
  -- A sequence's limit is its own maximum (minimum when it counts down), or the maximum of the
  -- integer column it feeds (serial, identity) when that is nearer: PgHero's check.
  -- pg_sequences shows last_value only to roles that may read the sequence: the others are counted.
  -- Used: the share of the way from where it starts (its minimum, or its maximum when it counts
  -- down) to its limit; a CYCLE sequence never runs out.
  SELECT s.schemaname, s.sequencename, s.data_type::text AS data_type, s.last_value, s.cycle,
         CASE WHEN s.increment_by > 0 THEN s.min_value ELSE s.max_value END AS start_value,
         has_sequence_privilege(c.oid, 'SELECT,USAGE') AS readable,
         CASE WHEN s.increment_by > 0
              THEN LEAST(s.max_value, CASE col.atttypid WHEN 'int2'::regtype THEN 32767
                                                      WHEN 'int4'::regtype THEN 2147483647 END)
              ELSE GREATEST(s.min_value, CASE col.atttypid WHEN 'int2'::regtype THEN -32768
                                                         WHEN 'int4'::regtype THEN -2147483648 END)
         END AS limit_value,
         col.table_name, col.column_name
    FROM pg_sequences s
    JOIN pg_namespace n ON n.nspname = s.schemaname
    JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = s.sequencename
    LEFT JOIN LATERAL (
      SELECT a.atttypid, a.attname AS column_name, d.refobjid::regclass::text AS table_name
        FROM pg_depend d
        JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
       WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.refclassid = 'pg_class'::regclass
         AND d.deptype IN ('a', 'i') AND d.refobjsubid > 0
       LIMIT 1
    ) col ON true
),
counters AS (
{server_counters}
)
SELECT counters.*,
       (SELECT json_agg(json_build_object('datname', datname, 'xid_age', age(datfrozenxid),
                                          'mxid_age', mxid_age(datminmxid)) ORDER BY datname)
          FROM pg_database) AS databases,
       (SELECT json_agg(t ORDER BY t.xid_age DESC) FROM (
          -- The ten oldest first, then a TOAST table's own table (by reltoastrelid, not indexed).
          SELECT coalesce(p.oid, c.oid)::regclass::text AS table_name, c.relkind = 't' AS toast,
                 c.xid_age, pg_relation_size(c.oid) AS size_bytes
            FROM (SELECT oid, relkind, age(relfrozenxid) AS xid_age FROM pg_class
                   WHERE relkind IN ('r', 'm', 't') ORDER BY 3 DESC LIMIT 10) c
            LEFT JOIN pg_class p ON p.reltoastrelid = c.oid) t) AS tables,
       (SELECT json_agg(q ORDER BY q.used DESC) FROM (
          SELECT schemaname, sequencename, data_type, table_name, column_name, last_value, limit_value,
                 round(used, 4) AS used
            FROM (SELECT *, (last_value - start_value)::numeric / nullif(limit_value - start_value, 0) AS used
                    FROM seq WHERE NOT cycle) u
           WHERE used > 0.5 LIMIT 100) q) AS sequences,
       (SELECT count(*) FROM seq WHERE NOT readable) AS sequences_unreadable,
       (SELECT count(*) FROM seq) AS sequences_total,
       current_database() AS datname, current_user AS rolname
  FROM counters
