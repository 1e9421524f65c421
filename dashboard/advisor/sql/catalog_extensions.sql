-- Extensions installed in the database, with their schemas: a trigram index needs pg_trgm, and its
-- operator class is named by its schema (which need not be on the search_path).
SELECT extname, extnamespace::regnamespace::text AS schema FROM pg_extension ORDER BY extname
