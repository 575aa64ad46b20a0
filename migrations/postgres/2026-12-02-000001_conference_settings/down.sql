-- Manual presence cleared on conferences by up.sql is not restored (it no longer applied).
ALTER TABLE extension DROP COLUMN max_participants;
ALTER TABLE extension DROP COLUMN conference_pin;
