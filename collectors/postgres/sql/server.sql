-- What the collector needs to know about the server before reading statistics.
SELECT current_setting('server_version_num')::int                          AS version_num,
       current_setting('server_version')                                   AS version,
       extract(epoch FROM pg_postmaster_start_time())::bigint              AS postmaster_start,
       -- Readable only with pg_read_all_settings (pg_monitor has it); NULL means unknown here.
       CASE WHEN pg_has_role(current_user, 'pg_read_all_settings', 'USAGE')
            THEN current_setting('shared_preload_libraries') END            AS preload,
       (SELECT extnamespace::regnamespace::text
          FROM pg_extension WHERE extname = 'pg_stat_statements')           AS pgss_schema,
       current_setting('pg_stat_statements.save', true)                    AS pgss_save,
       current_setting('pg_stat_statements.max', true)                     AS pgss_max,
       pg_has_role(current_user, 'pg_read_all_stats', 'USAGE')             AS can_read_all,
       current_user                                                        AS rolname,
       current_database()                                                  AS datname
