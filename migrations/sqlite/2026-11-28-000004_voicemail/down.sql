DROP TABLE voicemail_message;
DROP TABLE mailbox;
