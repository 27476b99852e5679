//! The `DATABASE_URL` format conductor gives to every service, and its inverse.
//!
//! The format is `sqlite://` followed by the absolute path of the database file, unescaped:
//! `sqlite:///home/u/.local/share/FACTSWAY/factsway.db`. sqlx (`SqliteConnectOptions::from_str`)
//! and most SQLite URL parsers read it as a plain file path. There is no query string, so a `?`
//! in a path is ambiguous to such parsers; conductor's data dirs never contain one.
//! This module does not check that the file exists or is a database.

use std::path::{Path, PathBuf};

/// The scheme and authority every `DATABASE_URL` starts with.
const PREFIX: &str = "sqlite://";

/// The `DATABASE_URL` for the database file at `path`: `sqlite://` followed by the path.
///
/// `path` should be absolute (conductor resolves it against the data dir first); an absolute
/// Unix path therefore gives three slashes (`sqlite:///home/u/app.db`).
/// A path that is not valid UTF-8 is converted lossily.
pub fn database_url(path: &Path) -> String {
    format!("{PREFIX}{}", path.to_string_lossy())
}

/// The file path inside a `DATABASE_URL` made by [`database_url`], or `None` when `url` does
/// not start with `sqlite://` or names no path.
pub fn path_from_database_url(url: &str) -> Option<PathBuf> {
    let path = url.strip_prefix(PREFIX)?;
    if path.is_empty() {
        return None;
    }
    Some(PathBuf::from(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absolute_unix_path_gives_three_slashes() {
        let url = database_url(Path::new("/home/u/.local/share/FACTSWAY/factsway.db"));
        assert_eq!(url, "sqlite:///home/u/.local/share/FACTSWAY/factsway.db");
    }

    #[test]
    fn url_parses_back_to_the_same_path() {
        for path in ["/tmp/a b/x.db", "/data/FACTSWAY/factsway.db", "/ü/ñ.db"] {
            let url = database_url(Path::new(path));
            assert_eq!(
                path_from_database_url(&url),
                Some(PathBuf::from(path)),
                "{url}"
            );
        }
    }

    #[test]
    fn other_schemes_and_empty_paths_are_rejected() {
        assert_eq!(path_from_database_url("postgres://localhost/db"), None);
        assert_eq!(path_from_database_url("sqlite:"), None);
        assert_eq!(path_from_database_url("sqlite://"), None);
    }
}
