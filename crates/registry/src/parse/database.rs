//! Reads `[database]`: where the app's database file and its migrations are.
//!
//! Both paths are only made absolute here; whether they exist is for `db` to find out when it
//! opens them.

use std::path::Path;

use crate::keys;
use crate::spec::DatabaseSpec;

use super::ctx::Ctx;
use super::paths::resolve;
use super::walker::Section;

pub(super) fn read_database(
    ctx: &mut Ctx<'_>,
    root: &Section<'_, '_>,
    base_dir: &Path,
) -> DatabaseSpec {
    let Some(database) = root.table(ctx, "database") else {
        return DatabaseSpec::default();
    };
    database.check_keys(ctx, &keys::DATABASE);
    DatabaseSpec {
        path: database
            .word(ctx, "path")
            .map(|path| resolve(base_dir, path.get_ref())),
        migrations: database
            .word(ctx, "migrations")
            .map(|path| resolve(base_dir, path.get_ref())),
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::parse::walker::read_toml;

    #[test]
    fn paths_are_made_absolute_and_an_empty_one_is_reported() {
        let text = "[database]\npath = \"data/app.db\"\nmigrations = \"\"\n";
        let (spec, problems) = read_toml(text, |ctx, root| {
            read_database(ctx, root, Path::new("/srv/demo"))
        });
        assert_eq!(spec.path, Some(PathBuf::from("/srv/demo/data/app.db")));
        assert_eq!(spec.migrations, None);
        assert_eq!(
            problems,
            [
                "3:14: database.migrations: must not be empty\n  help: give it a value, or remove the key to use the default"
            ]
        );
    }
}
