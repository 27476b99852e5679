-- Key/value table shared with the application's services.
-- The fake-service fixture refuses to start unless this table exists, which is how the
-- verification gates prove that conductor migrates the database before it starts any service.
CREATE TABLE app_meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
