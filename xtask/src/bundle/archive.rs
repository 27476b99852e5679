//! Writes a gzip-compressed tar archive in the POSIX ustar format: regular files and
//! directories only, owner root, one fixed modification time, entries in the order given, so
//! the same inputs always give the same bytes (a reproducible bundle).
//! About sixty lines instead of the `tar` crate, to keep xtask's dependencies to what the
//! workspace already pins (`flate2`). No reading, no links, no paths over 255 bytes.

use std::io::{self, Write};

use flate2::{Compression, write::GzEncoder};

const BLOCK: usize = 512;

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
    let mut gz = GzEncoder::new(out, level);
    for entry in entries {
        gz.write_all(&header(entry, mtime)?)?;
        if let Some(contents) = &entry.contents {
            gz.write_all(contents)?;
            let padding = (BLOCK - contents.len() % BLOCK) % BLOCK;
            gz.write_all(&[0; BLOCK][..padding])?;
        }
    }
    // The end of an archive: two zero blocks.
    gz.write_all(&[0; 2 * BLOCK])?;
    gz.finish()?.flush()
}

/// The 512-byte ustar header of `entry`.
pub(crate) fn header(entry: &Entry, mtime: u64) -> io::Result<[u8; BLOCK]> {
    let mut header = [0u8; BLOCK];
    let path = match entry.contents {
        Some(_) => entry.path.clone(),
        None => format!("{}/", entry.path),
    };
    let (prefix, name) = split_path(&path)?;
    header[..name.len()].copy_from_slice(name.as_bytes());
    octal(&mut header[100..108], u64::from(entry.mode))?;
    octal(&mut header[108..116], 0)?; // uid
    octal(&mut header[116..124], 0)?; // gid
    let size = entry.contents.as_ref().map_or(0, Vec::len) as u64;
    octal(&mut header[124..136], size)?;
    octal(&mut header[136..148], mtime)?;
    header[156] = if entry.contents.is_some() { b'0' } else { b'5' };
    header[257..263].copy_from_slice(b"ustar\0");
    header[263..265].copy_from_slice(b"00");
    header[265..269].copy_from_slice(b"root"); // uname
    header[297..301].copy_from_slice(b"root"); // gname
    octal(&mut header[329..337], 0)?; // devmajor
    octal(&mut header[337..345], 0)?; // devminor
    header[345..345 + prefix.len()].copy_from_slice(prefix.as_bytes());
    // The checksum is computed with its own field read as spaces.
    header[148..156].copy_from_slice(b"        ");
    let sum: u32 = header.iter().map(|&byte| u32::from(byte)).sum();
    header[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    Ok(header)
}

/// Splits a path into ustar's `prefix` (≤ 155 bytes) and `name` (≤ 100 bytes) at a `/`.
fn split_path(path: &str) -> io::Result<(&str, &str)> {
    if path.len() <= 100 {
        return Ok(("", path));
    }
    path.char_indices()
        .filter(|&(at, c)| c == '/' && at <= 155 && path.len() - at - 1 <= 100)
        .map(|(at, _)| (&path[..at], &path[at + 1..]))
        .find(|(_, name)| !name.is_empty())
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("path {path:?} does not fit a ustar header"),
            )
        })
}

/// Writes `value` as zero-padded octal digits followed by a NUL, filling `field`.
fn octal(field: &mut [u8], value: u64) -> io::Result<()> {
    let width = field.len() - 1;
    let digits = format!("{value:0width$o}");
    if digits.len() > width {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{value} does not fit {width} octal digits"),
        ));
    }
    field[..width].copy_from_slice(digits.as_bytes());
    field[width] = 0;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(header: &[u8], range: std::ops::Range<usize>) -> String {
        String::from_utf8_lossy(&header[range])
            .trim_end_matches(['\0', ' '])
            .to_owned()
    }

    #[test]
    fn header_fields_and_checksum() {
        let entry = Entry {
            path: "top/bin/conductor".to_owned(),
            mode: 0o755,
            contents: Some(vec![1; 1000]),
        };
        let header = header(&entry, 1_700_000_000).unwrap();
        assert_eq!(field(&header, 0..100), "top/bin/conductor");
        assert_eq!(field(&header, 100..108), "0000755");
        assert_eq!(field(&header, 124..136), format!("{:011o}", 1000));
        assert_eq!(header[156], b'0');
        let stored = u32::from_str_radix(&field(&header, 148..156), 8).unwrap();
        let mut blank = header;
        blank[148..156].copy_from_slice(b"        ");
        assert_eq!(stored, blank.iter().map(|&b| u32::from(b)).sum::<u32>());
    }

    #[test]
    fn long_paths_use_the_prefix_and_too_long_ones_fail() {
        let long = format!("{}/{}", "d".repeat(120), "f".repeat(90));
        let header = header(
            &Entry {
                path: long.clone(),
                mode: 0o644,
                contents: Some(Vec::new()),
            },
            0,
        )
        .unwrap();
        assert_eq!(field(&header, 345..500), "d".repeat(120));
        assert_eq!(field(&header, 0..100), "f".repeat(90));
        let too_long = Entry {
            path: "x".repeat(300),
            mode: 0o644,
            contents: None,
        };
        assert!(super::header(&too_long, 0).is_err());
    }

    #[test]
    fn archive_is_deterministic_and_block_aligned() {
        let entries = [
            Entry {
                path: "top".to_owned(),
                mode: 0o755,
                contents: None,
            },
            Entry {
                path: "top/a.txt".to_owned(),
                mode: 0o644,
                contents: Some(b"hello\n".to_vec()),
            },
        ];
        let mut first = Vec::new();
        write_tar_gz(&mut first, &entries, 0, Compression::fast()).unwrap();
        let mut second = Vec::new();
        write_tar_gz(&mut second, &entries, 0, Compression::fast()).unwrap();
        assert_eq!(first, second);
        let mut tar = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&first[..]), &mut tar)
            .unwrap();
        // Two headers, one data block, two end blocks.
        assert_eq!(tar.len(), 5 * BLOCK);
        assert_eq!(&tar[2 * BLOCK..2 * BLOCK + 6], b"hello\n");
        assert_eq!(field(&tar, 0..100), "top/");
    }
}
