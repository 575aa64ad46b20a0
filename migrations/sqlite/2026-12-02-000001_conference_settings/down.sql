-- Manual presence cleared on conferences by up.sql is not restored (it no longer applied).
-- SQLite 3.35+ drops columns that no index or constraint names.
ALTER TABLE extension DROP COLUMN max_participants;
ALTER TABLE extension DROP COLUMN conference_pin;
