DROP TABLE call;
ALTER TABLE pbx DROP COLUMN default_caller_id_number;
ALTER TABLE pbx DROP COLUMN default_caller_id_name;
