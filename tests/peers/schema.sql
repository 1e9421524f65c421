-- Peer suite schema: the tables and data that the PgHero and Dexter index-advisor
-- tests run against, rebuilt as one PostgreSQL 15 script (see README.md in this folder).
--
-- The two suites use different table names (PgHero: users, cities, states;
-- Dexter: posts, blogs, events, comments, t, "Bar"."Foo"), so, like the peers
-- themselves, everything lives in the public schema except Dexter's "Bar".
-- Random columns are seeded so that every run builds the same data.
-- Runs in a few seconds; safe to re-run (drops what it creates).

SET client_min_messages = warning;

CREATE EXTENSION IF NOT EXISTS pg_trgm;       -- PgHero: gist_trgm_ops index on users.country
CREATE EXTENSION IF NOT EXISTS ltree;         -- PgHero: users.tree_path
CREATE EXTENSION IF NOT EXISTS hstore;        -- Dexter: posts.hstore
CREATE EXTENSION IF NOT EXISTS postgres_fdw;  -- Dexter: foreign table comments
CREATE EXTENSION IF NOT EXISTS hypopg;        -- Dexter creates it in its schema; used to check cases

------------------------------------------------------------------------------
-- PgHero (test/internal/db/schema.rb + test/test_helper.rb)
------------------------------------------------------------------------------

DROP MATERIALIZED VIEW IF EXISTS all_users;
DROP TABLE IF EXISTS users, cities, states CASCADE;

-- cities is created but never filled by PgHero's setup (only used in a JOIN case).
CREATE TABLE cities (
  id bigserial PRIMARY KEY,
  name varchar
);

CREATE TABLE states (
  id bigserial PRIMARY KEY,
  name varchar
);

CREATE TABLE users (
  id bigserial PRIMARY KEY,
  city_id integer,
  login_attempts integer,
  email varchar,
  zip_code varchar,
  active boolean,
  country varchar,
  tree_path ltree,
  range int4range,
  last_known_ip inet,
  metadata jsonb,
  created_at timestamp(6),
  updated_at timestamp(6)
);

-- 50 states: 'State 0' .. 'State 49' (below PgHero's 500-row "no index needed" threshold).
INSERT INTO states (name)
SELECT 'State ' || i FROM generate_series(0, 49) AS i;

-- 5000 users, i = 0..4999 (ids 1..5000):
--   city_id        = i % 100                 (100 values, 50 rows each)
--   email          = person<i>@example.org   (unique)
--   login_attempts = random 0..29            (~167 rows per value)
--   zip_code       = NULL when i % 40 = 0 (125 rows), else '12345'
--   active         = true for every row
--   created_at     = updated_at = base - i seconds (strictly decreasing with id)
DO $$ BEGIN PERFORM setseed(0.42); END $$;   -- same data on every run
INSERT INTO users (city_id, email, login_attempts, zip_code, active, country, tree_path,
                   range, metadata, created_at, updated_at)
SELECT i % 100,
       'person' || i || '@example.org',
       floor(random() * 30)::int,
       CASE WHEN i % 40 = 0 THEN NULL ELSE '12345' END,
       true,
       'Test ' || floor(random() * 30)::int,
       ('path' || floor(random() * 30)::int)::ltree,
       int4range(0, floor(random() * 5)::int, '[]'),
       '{"favorite_color": "red"}'::jsonb,
       timestamp '2024-01-01 00:00:00' - i * interval '1 second',
       timestamp '2024-01-01 00:00:00' - i * interval '1 second'
FROM generate_series(0, 4999) AS i
ORDER BY i;

-- Existing indexes in PgHero's test schema (besides the primary key).
CREATE INDEX ON users (id);                                 -- deliberate duplicate of the PK
CREATE INDEX ON users (updated_at);
CREATE INDEX ON users USING hash (login_attempts);
CREATE INDEX ON users USING gist (country gist_trgm_ops);
CREATE INDEX ON users USING gist (tree_path);
CREATE INDEX ON users USING gist (range);
CREATE INDEX ON users USING brin (created_at);
CREATE INDEX ON users USING gist (last_known_ip inet_ops);
CREATE INDEX ON users USING gin (metadata);

CREATE MATERIALIZED VIEW all_users AS SELECT * FROM users;

------------------------------------------------------------------------------
-- Dexter (test/support/schema.sql + test/batching_test.rb)
------------------------------------------------------------------------------

DROP TABLE IF EXISTS posts CASCADE;   -- also drops posts_view and posts_materialized
CREATE TABLE posts (
  id int,
  blog_id int,
  user_id int,
  json json,
  jsonb jsonb,
  hstore hstore,
  point point,
  indexed int
);
-- 100000 posts, n = 1..100000: id = indexed = n (unique), blog_id = n % 1000, user_id = n % 10.
-- No primary key: posts.id is deliberately unindexed; only "indexed" has an index.
INSERT INTO posts (id, blog_id, user_id, indexed)
SELECT n, n % 1000, n % 10, n FROM generate_series(1, 100000) AS n;
CREATE INDEX ON posts (indexed);
CREATE VIEW posts_view AS SELECT id AS view_id FROM posts;
CREATE MATERIALIZED VIEW posts_materialized AS SELECT * FROM posts;

DROP TABLE IF EXISTS blogs;
CREATE TABLE blogs (
  id int PRIMARY KEY
);
INSERT INTO blogs (id) SELECT n FROM generate_series(1, 1000) AS n;

DROP TABLE IF EXISTS events CASCADE;
CREATE TABLE events (
  id int,
  blog_id int
) PARTITION BY HASH (blog_id);
CREATE TABLE events_0 PARTITION OF events FOR VALUES WITH (MODULUS 3, REMAINDER 0);
CREATE TABLE events_1 PARTITION OF events FOR VALUES WITH (MODULUS 3, REMAINDER 1);
CREATE TABLE events_2 PARTITION OF events FOR VALUES WITH (MODULUS 3, REMAINDER 2);
INSERT INTO events (id, blog_id) SELECT n, n FROM generate_series(1, 100000) AS n;

DROP SCHEMA IF EXISTS "Bar" CASCADE;
CREATE SCHEMA "Bar";
CREATE TABLE "Bar"."Foo" ("Id" int);
INSERT INTO "Bar"."Foo" SELECT n FROM generate_series(1, 100000) AS n;

-- A foreign table: advisors must not propose indexes on it. The server is never
-- contacted by plain EXPLAIN (no use_remote_estimate).
CREATE SERVER IF NOT EXISTS other FOREIGN DATA WRAPPER postgres_fdw;
DROP FOREIGN TABLE IF EXISTS comments;
CREATE FOREIGN TABLE comments (post_id int) SERVER other;

-- Dexter's batching test table: 100 int columns c00..c99, 2000 rows, every column = n.
DROP TABLE IF EXISTS t;
DO $$
BEGIN
  EXECUTE 'CREATE TABLE t (' ||
    (SELECT string_agg(format('c%s int', lpad(k::text, 2, '0')), ', ' ORDER BY k)
       FROM generate_series(0, 99) AS k) || ')';
  EXECUTE 'INSERT INTO t SELECT ' ||
    (SELECT string_agg('n', ', ') FROM generate_series(0, 99)) ||
    ' FROM generate_series(1, 2000) AS n';
END
$$;

------------------------------------------------------------------------------
-- Statistics (both peers ANALYZE their tables before asking for advice)
------------------------------------------------------------------------------

-- cities stays un-analyzed on purpose, as in PgHero's setup: an empty, never-analyzed
-- table is planned as if it had ~10 pages of rows (an analyzed empty one as 1 row).
ANALYZE states;
ANALYZE users;
ANALYZE all_users;
ANALYZE posts;
ANALYZE posts_materialized;
ANALYZE blogs;
ANALYZE events;
ANALYZE "Bar"."Foo";
ANALYZE t;
