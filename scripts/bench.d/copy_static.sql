-- bench: the small tables of the copy benchmark's chat database (after schema.sql).
INSERT INTO statuses (status, label, is_final) VALUES
	('open', 'Open', false), ('pending', 'Waiting for customer', false),
	('assigned', 'Assigned', false), ('resolved', 'Resolved', true), ('closed', 'Closed', true);
INSERT INTO agents (name, email, active, max_load)
SELECT 'agent ' || g, 'agent' || g || '@example.test', g % 7 <> 0, 5 + g % 10
FROM generate_series(1, 20) g;
INSERT INTO counters (id, n) SELECT g, 0 FROM generate_series(1, 10) g;
INSERT INTO "Support ""Desk"" ø"."Chat ""Rooms"" ü" ("Room ID", "Display ""Name""", "Mitglieder Zahl", "lastActivity")
SELECT g, 'Raum "' || g || '" – Grüße', g % 7, timestamptz '2024-03-01 12:00:00+00' + g * interval '1 hour'
FROM generate_series(1, 50) g;
