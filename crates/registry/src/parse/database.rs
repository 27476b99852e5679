//! Reads `[database]`: where the app's database file and its migrations are.
//!
//! Both paths are only made absolute here; whether they exist is for `db` to find out when it
//! opens them.

use std::path::Path;

use crate::spec::DatabaseSpec;

use super::ctx::Ctx;
use super::paths::resolve;
use super::walker::Section;

const DATABASE_KEYS: &[&str] = &["path", "migrations"];

pub(super) fn read_database(
    ctx: &mut Ctx<'_>,
    root: &Section<'_, '_>,
    base_dir: &Path,
) -> DatabaseSpec {
    let Some(database) = root.table(ctx, "database") else {
        return DatabaseSpec::default();
    };
    database.check_keys(ctx, DATABASE_KEYS);
    DatabaseSpec {
        path: database
            .word(ctx, "path")
            .map(|path| resolve(base_dir, path.get_ref())),
        migrations: database
            .word(ctx, "migrations")
            .map(|path| resolve(base_dir, path.get_ref())),
    }
}
