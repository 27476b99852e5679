//! Rebuilds the crate when a migration file is added, removed or edited.
//! `refinery::embed_migrations!` uses `include_str!`, which tracks the files it found but not
//! new files appearing in the directory; this build script does nothing else.

fn main() {
    println!("cargo:rerun-if-changed=../../migrations");
    println!("cargo:rerun-if-changed=build.rs");
}
