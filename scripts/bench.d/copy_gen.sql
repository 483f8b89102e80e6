-- bench: one slice (inquiry ids :lo .. :hi) of the copy benchmark's chat database. Several
-- of these run at once, one per core. Per inquiry: 12 messages (1 in 8 with a 1.9-4.1 kB
-- body of md5 hex, which pglz cannot shrink, so TOASTed out of line; 1 in 50 with a 1 kB
-- random bytea attachment), 2 status_history rows, 1-2 assignments, 1-2 webhook events
-- (json), 1 sla_metrics row. Bodies come from a pool of 4096, so generating is cheap.
-- Foreign keys are not checked while loading (session_replication_role = replica): the
-- data is consistent by construction.
SET session_replication_role = replica;
SET synchronous_commit = off;

CREATE TEMP TABLE pool (pid int PRIMARY KEY, body text NOT NULL);
INSERT INTO pool
SELECT p, (SELECT string_agg(md5(p::text || ':' || s), '') FROM generate_series(1, 60 + (p * 37) % 70) s)
FROM generate_series(0, 4095) p;

INSERT INTO inquiries (id, customer, channel, status, assignee, priority, tags, metadata, created_at, updated_at)
SELECT g, 'customer-' || g,
       (ARRAY['web', 'email', 'whatsapp', 'phone'])[1 + g % 4],
       (ARRAY['open', 'pending', 'assigned', 'resolved', 'closed']::inquiry_status[])[1 + g % 5],
       CASE WHEN g % 3 = 0 THEN NULL ELSE 1 + g % 20 END,
       1 + g % 5,
       CASE WHEN g % 5 = 0 THEN '{}'::text[] ELSE ARRAY['vip', 'lang:' || (ARRAY['de','en','fr'])[1 + g % 3]] END,
       CASE WHEN g % 11 = 0 THEN NULL
            ELSE jsonb_build_object('source', 'bench', 'g', g, 'score', g % 100,
                                    'nested', jsonb_build_object('a', ARRAY[g, g + 1])) END,
       timestamptz '2024-01-01 00:00:00+00' + g * interval '17 seconds',
       CASE WHEN g % 2 = 0 THEN timestamptz '2024-06-01 00:00:00+00' + g * interval '3 seconds' END
FROM generate_series(:lo, :hi) g;

INSERT INTO messages (inquiry_id, author, body, attachments, sent_at, read_at)
SELECT q.i,
       CASE WHEN k % 2 = 0 THEN 'customer' ELSE 'agent ' || (1 + q.i % 20) END,
       CASE WHEN (q.i * 7 + k) % 8 = 0 THEN (SELECT body FROM pool WHERE pid = (q.i * 13 + k * 7) % 4096)
            WHEN k = 5 THEN ''
            ELSE 'message ' || k || ' about inquiry ' || q.i || ': ' || md5(q.i::text || '/' || k) END,
       CASE WHEN (q.i + k) % 50 = 0
            THEN decode(left((SELECT body FROM pool WHERE pid = (q.i * 3 + k) % 4096), 2000), 'hex') END,
       timestamptz '2024-01-01 00:00:00+00' + q.i * interval '17 seconds' + k * interval '1 minute',
       CASE WHEN k < 4 THEN timestamptz '2024-01-01 00:00:00+00' + q.i * interval '17 seconds' + k * interval '2 minutes' END
FROM generate_series(:lo, :hi) q(i) CROSS JOIN generate_series(1, 12) k;

INSERT INTO status_history (inquiry_id, old_status, new_status, changed_at)
SELECT g, CASE WHEN k = 2 THEN 'open'::inquiry_status END,
       CASE WHEN k = 1 THEN 'open'::inquiry_status
            ELSE (ARRAY['open', 'pending', 'assigned', 'resolved', 'closed']::inquiry_status[])[1 + g % 5] END,
       timestamptz '2024-01-01 00:00:00+00' + g * interval '17 seconds' + k * interval '1 hour'
FROM generate_series(:lo, :hi) g CROSS JOIN generate_series(1, 2) k;

INSERT INTO assignments (inquiry_id, agent_id, role, assigned_at)
SELECT g, 1 + (g + k * 3) % 20, CASE WHEN k = 1 THEN 'owner' ELSE 'watcher' END,
       timestamptz '2024-01-01 00:00:00+00' + g * interval '17 seconds' + k * interval '5 minutes'
FROM generate_series(:lo, :hi) g CROSS JOIN generate_series(1, 2) k
WHERE g % 3 <> 0 AND (k = 1 OR g % 4 = 0);

INSERT INTO webhook_events (inquiry_id, kind, payload, delivered, created_at)
SELECT g, CASE WHEN k = 1 THEN 'created' ELSE 'status' END,
       json_build_object('inquiry', g, 'k', k, 'channel', (ARRAY['web', 'email', 'whatsapp', 'phone'])[1 + g % 4]),
       g % 2 = 0, timestamptz '2024-01-01 00:00:00+00' + g * interval '17 seconds' + k * interval '1 second'
FROM generate_series(:lo, :hi) g CROSS JOIN generate_series(1, 2) k
WHERE k = 1 OR g % 10 = 0;

INSERT INTO sla_metrics (inquiry_id, first_response, resolution_time, score, weight, ratio, csat, cost)
SELECT g, (g % 90) * interval '1 minute' + interval '3.25 seconds',
       CASE WHEN g % 5 >= 3 THEN interval '1 day 2 hours' * (g % 4) END,
       (g % 100000) / 100.0,
       CASE g % 50 WHEN 0 THEN 'NaN'::float8 WHEN 1 THEN 'Infinity' ELSE g * 1.5 END,
       (g % 10)::real / 3,
       CASE WHEN g % 6 = 0 THEN NULL ELSE (1 + g % 5)::csat_score END,
       ROW('EUR', (g % 50000) / 100.0)::money_amount
FROM generate_series(:lo, :hi) g;
