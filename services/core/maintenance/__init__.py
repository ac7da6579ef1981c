"""Operations on the database itself: retention (deleting what is past its period), VACUUM,
ANALYZE and REINDEX, statistics and health checks, inspection. Every SQL statement the
operator's CLI (services.cli) and the backup service's scheduler run lives here."""
