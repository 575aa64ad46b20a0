ALTER TABLE extension DROP COLUMN max_participants;
ALTER TABLE extension DROP COLUMN conference_pin;
