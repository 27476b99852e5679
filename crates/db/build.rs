//! Embeds the workspace's `migrations/` folder: writes `$OUT_DIR/embedded_migrations.rs`, a
//! list of `(stem, sql)` pairs in version order, and rebuilds the crate when a migration file
//! is added, removed or edited. Done here rather than with `refinery::embed_migrations!`
//! because that macro's code parses every name with a regex at run time, and compiling it
//! cost 1.2 ms of each `conductor up`, before any service could start.

use std::{env, fs, path::PathBuf};

fn main() {
    let dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets it"))
        .join("../../migrations");
    println!("cargo:rerun-if-changed={}", dir.display());
    println!("cargo:rerun-if-changed=build.rs");
    let mut found: Vec<(u64, String, PathBuf)> = Vec::new();
    let entries = fs::read_dir(&dir)
        .unwrap_or_else(|err| panic!("cannot read the migrations in {}: {err}", dir.display()));
    for entry in entries {
        let path = entry.expect("a readable directory entry").path();
        let Some(file) = path.file_name().and_then(|name| name.to_str()) else {
            continue;
        };
        let Some(stem) = file.strip_suffix(".sql") else {
            continue;
        };
        let version = parse_stem(stem).unwrap_or_else(|| {
            panic!(
                "{}: a migration is named V<version>__<name>.sql, the name in ASCII letters, \
                 digits and underscores",
                path.display()
            )
        });
        found.push((
            version,
            stem.to_owned(),
            path.canonicalize().expect("the file exists"),
        ));
    }
    found.sort();
    let mut code = String::from("pub(crate) const EMBEDDED: &[(&str, &str)] = &[\n");
    for (_, stem, path) in &found {
        code.push_str(&format!(
            "    ({stem:?}, include_str!({:?})),\n",
            path.display().to_string()
        ));
    }
    code.push_str("];\n");
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets it"));
    fs::write(out.join("embedded_migrations.rs"), code).expect("OUT_DIR is writable");
}

/// The version of a `V<digits>__<ascii word>` stem (what `migrate::parse_stem` accepts, minus
/// unversioned `U` migrations, which the embedded set does not use).
fn parse_stem(stem: &str) -> Option<u64> {
    let rest = stem.strip_prefix('V')?;
    let (version, name) = rest.split_once("__")?;
    let ascii_word = |text: &str| {
        !text.is_empty() && text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    };
    (ascii_word(name) && version.bytes().all(|b| b.is_ascii_digit()))
        .then(|| version.parse().ok())
        .flatten()
}
