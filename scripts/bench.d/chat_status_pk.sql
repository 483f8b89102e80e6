-- bench: status_change.sql without the UPDATE of webhook_events (REPLICA IDENTITY FULL with
-- a json column), which PostgreSQL's own apply cannot perform ("could not identify an
-- equality operator for type json"): the catch-up and lag comparisons need a mix that both
-- contenders can apply. Same shape otherwise: one inquiry, its history, its messages marked
-- read (UPDATEs that leave TOASTed bodies unchanged), an event, its SLA row.
\set nold 200 * :scale
\set ninq 1000 * :scale
\set inq random(:nold + 1, :ninq)
\set st random(1, 4)
BEGIN;
UPDATE inquiries
   SET status = (ARRAY['open', 'pending', 'assigned', 'resolved']::inquiry_status[])[:st],
       updated_at = now()
 WHERE id = :inq;
INSERT INTO status_history (inquiry_id, old_status, new_status)
VALUES (:inq, NULL, (ARRAY['open', 'pending', 'assigned', 'resolved']::inquiry_status[])[:st]);
UPDATE messages SET read_at = now() WHERE inquiry_id = :inq;
INSERT INTO webhook_events (inquiry_id, kind, payload)
VALUES (:inq, 'status', json_build_object('status', :st, 'at', now()));
UPDATE sla_metrics
   SET resolution_time = now() - timestamptz '2024-01-01 00:00:00+00',
       score = score + 0.5, csat = 1 + :st, weight = weight / 3
 WHERE inquiry_id = :inq;
COMMIT;
