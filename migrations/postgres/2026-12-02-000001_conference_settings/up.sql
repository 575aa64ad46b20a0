-- Conference settings: the PIN callers enter before joining (digits, NULL for none) and
-- how many callers a room takes at once. Only conference extensions use them; the API
-- refuses them on other types.
ALTER TABLE extension ADD COLUMN conference_pin TEXT;
ALTER TABLE extension ADD COLUMN max_participants INTEGER NOT NULL DEFAULT 50;

-- A conference's status follows its room: away/dnd set on one earlier no longer apply
-- (and the API now refuses them).
UPDATE extension SET manual_presence = NULL WHERE kind = 'conference';
