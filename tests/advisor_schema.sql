-- A shop big enough that the planner cares, built for the advisor's tests and benchmark.
-- Seeded: every run builds the same data.
SELECT setseed(0.42);

CREATE TABLE customers (
  id bigserial PRIMARY KEY,
  email text NOT NULL,
  segment text NOT NULL,           -- 3 values: too unselective for a key column
  country text NOT NULL,
  created_at timestamptz NOT NULL
);
INSERT INTO customers (email, segment, country, created_at)
SELECT 'Customer' || g || '@Example.org',
       (ARRAY['retail', 'wholesale', 'partner'])[1 + g % 3],
       'C' || (g % 40),
       timestamptz '2025-01-01' + g * interval '1 minute'
  FROM generate_series(1, 200000) g;

CREATE TABLE orders (
  id bigserial PRIMARY KEY,
  customer_id bigint NOT NULL REFERENCES customers (id),
  region int NOT NULL,             -- 200 values
  channel int NOT NULL,            -- 50 values, independent of region
  status text NOT NULL,            -- 5 values
  ref text NOT NULL,               -- unique business reference
  total numeric NOT NULL,
  created_at timestamptz NOT NULL
);
INSERT INTO orders (customer_id, region, channel, status, ref, total, created_at)
SELECT 1 + (g::bigint * 7919) % 200000,
       (g * 31) % 200,
       (g * 17 + g / 200) % 50,
       (ARRAY['new', 'paid', 'shipped', 'delivered', 'returned'])[1 + g % 5],
       'R-' || g,
       (g % 1000) / 10.0,
       timestamptz '2025-01-01' + g * interval '30 seconds'
  FROM generate_series(1, 300000) g;

CREATE TABLE events (
  id bigserial PRIMARY KEY,
  kind text NOT NULL,
  created_at timestamptz NOT NULL
);
INSERT INTO events (kind, created_at)
SELECT 'k' || (g % 100), timestamptz '2025-01-01' + g * interval '1 second'
  FROM generate_series(1, 100000) g;
CREATE INDEX events_kind_created_at_idx ON events (kind, created_at);

CREATE TABLE tiny (id int PRIMARY KEY, name text NOT NULL);
INSERT INTO tiny SELECT g, 'name ' || g FROM generate_series(1, 50) g;

-- No autovacuum: a VACUUM at a moment that depends on the machine's speed sets the visibility map,
-- and index-only scans then change the advice (a count by segment becomes worth an index).
ALTER TABLE customers SET (autovacuum_enabled = false);
ALTER TABLE orders SET (autovacuum_enabled = false);
ALTER TABLE events SET (autovacuum_enabled = false);
ALTER TABLE tiny SET (autovacuum_enabled = false);
ANALYZE customers, orders, events, tiny;
