-- Extensions installed in the database: a trigram index needs pg_trgm.
SELECT extname FROM pg_extension ORDER BY extname
