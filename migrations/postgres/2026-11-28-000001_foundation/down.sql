DROP TABLE extension;
DROP TABLE api_key;
DROP TABLE pbx;
