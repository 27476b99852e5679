//! Writes `protocol.d.ts` and `protocol.js` (see `conductor_protocol::typescript`) into the
//! directory given as the one argument; `cargo xtask ts-types` runs it.

use std::path::PathBuf;

fn main() -> std::io::Result<()> {
    let Some(dir) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: ts_types <output dir>");
        std::process::exit(1);
    };
    std::fs::create_dir_all(&dir)?;
    std::fs::write(
        dir.join("protocol.d.ts"),
        conductor_protocol::typescript::declarations(),
    )?;
    std::fs::write(
        dir.join("protocol.js"),
        conductor_protocol::typescript::names_module(),
    )?;
    Ok(())
}
