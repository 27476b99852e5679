//! Writes a gzip-compressed tar archive (ustar headers, by the `tar` crate): regular files and
//! directories only, owner root, one fixed modification time, entries in the order given, so
//! the same inputs always give the same bytes (a reproducible bundle).

use std::io::{self, Write};

use flate2::{Compression, write::GzEncoder};

/// One archive member.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    /// Relative path with `/` separators, no trailing slash.
    pub(crate) path: String,
    /// Permission bits (`0o755`).
    pub(crate) mode: u32,
    /// `None` for a directory.
    pub(crate) contents: Option<Vec<u8>>,
}

/// Writes `entries` as a `.tar.gz` to `out` (gzip header without name or time).
pub(crate) fn write_tar_gz(
    out: impl Write,
    entries: &[Entry],
    mtime: u64,
    level: Compression,
) -> io::Result<()> {
    let mut builder = tar::Builder::new(GzEncoder::new(out, level));
    for entry in entries {
        let mut header = tar::Header::new_ustar();
        let (kind, size) = match &entry.contents {
            Some(contents) => (tar::EntryType::Regular, contents.len() as u64),
            None => (tar::EntryType::Directory, 0),
        };
        header.set_entry_type(kind);
        header.set_size(size);
        header.set_mode(entry.mode);
        header.set_uid(0);
        header.set_gid(0);
        header.set_username("root")?;
        header.set_groupname("root")?;
        header.set_mtime(mtime);
        header.set_path(&entry.path)?;
        header.set_cksum();
        builder.append(&header, entry.contents.as_deref().unwrap_or_default())?;
    }
    builder.into_inner()?.finish()?.flush()
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    fn entries() -> Vec<Entry> {
        vec![
            Entry {
                path: "top".to_owned(),
                mode: 0o755,
                contents: None,
            },
            Entry {
                path: "top/hello.txt".to_owned(),
                mode: 0o644,
                contents: Some(b"hello\n".to_vec()),
            },
            Entry {
                path: format!("top/{}/file", "d".repeat(120)),
                mode: 0o755,
                contents: Some(vec![7; 1000]),
            },
        ]
    }

    fn archive() -> Vec<u8> {
        let mut out = Vec::new();
        write_tar_gz(&mut out, &entries(), 1_700_000_000, Compression::fast()).unwrap();
        out
    }

    #[test]
    fn archive_is_deterministic_and_reads_back() {
        let first = archive();
        assert_eq!(first, archive(), "the same inputs gave other bytes");
        let mut tar = Vec::new();
        flate2::read::GzDecoder::new(&first[..])
            .read_to_end(&mut tar)
            .unwrap();
        assert_eq!(tar.len() % 512, 0, "not block aligned");
        let mut archive = tar::Archive::new(&tar[..]);
        let mut seen = Vec::new();
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let header = entry.header().clone();
            let mut contents = Vec::new();
            entry.read_to_end(&mut contents).unwrap();
            seen.push((
                entry.path().unwrap().display().to_string(),
                header.mode().unwrap(),
                header.mtime().unwrap(),
                header.username().unwrap().map(str::to_owned),
                contents.len(),
            ));
        }
        let expected: Vec<(String, u32, u64, Option<String>, usize)> = entries()
            .iter()
            .map(|e| {
                (
                    e.path.clone(),
                    e.mode,
                    1_700_000_000,
                    Some("root".to_owned()),
                    e.contents.as_ref().map_or(0, Vec::len),
                )
            })
            .collect();
        assert_eq!(seen, expected);
    }
}
