"""The backup service: base backups with pg_basebackup, WAL archive retention, restore drills and
point-in-time restores, around PostgreSQL's own tools."""
