"""Apply yoyo migrations uploaded to S3 to the database named by the key's first component.

- `config`: settings from the environment;
- `keys`: validation of database names and migration keys (before any download or SQL);
- `requests`: events and operator payloads turned into per-database run requests;
- `source`: listing and downloading a database's migrations from S3;
- `state`: what is applied (yoyo's tables) and this function's checksum and step tables;
- `backend`: the yoyo PostgreSQL backend adapted to Lambda (one connection, atomic marking);
- `locking`: the advisory lock per database and yoyo's lock row;
- `runner`: one action on one database;
- `report`: results to SNS and the JSON log.
"""
