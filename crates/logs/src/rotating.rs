//! [`RotatingFile`]: an `io::Write` file that rotates by size, named and compressed as service
//! logs are (`<stem>.log`, then `<stem>.1.log.gz` newest … `<stem>.<max_files>.log.gz`). For
//! logs written by one writer thread that may block on the disk, such as conductor's own log
//! behind tracing-appender's non-blocking worker; service logs have their own writer.

use std::{
    fs::{self, File, OpenOptions},
    io::{self, Write},
    path::{Path, PathBuf},
};

use crate::compress::{gzip, remove_if_exists};

/// A log file that rotates once it would grow past `max_size`, keeping `max_files` rotated
/// files, gzip-compressed. Rotation and compression happen inside [`Write::write`], on the
/// caller's thread.
#[derive(Debug)]
pub struct RotatingFile {
    dir: PathBuf,
    stem: String,
    max_size: u64,
    max_files: usize,
    file: File,
    size: u64,
}

impl RotatingFile {
    /// Opens (appending) `<dir>/<stem>.log`.
    ///
    /// # Errors
    ///
    /// The file cannot be opened or its size read.
    pub fn open(dir: &Path, stem: &str, max_size: u64, max_files: usize) -> io::Result<Self> {
        let path = dir.join(format!("{stem}.log"));
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        let size = file.metadata()?.len();
        Ok(RotatingFile {
            dir: dir.to_path_buf(),
            stem: stem.to_owned(),
            max_size: max_size.max(1),
            max_files,
            file,
            size,
        })
    }

    fn current(&self) -> PathBuf {
        self.dir.join(format!("{}.log", self.stem))
    }

    fn rotated(&self, number: usize) -> PathBuf {
        self.dir.join(format!("{}.{number}.log.gz", self.stem))
    }

    fn rotate(&mut self) -> io::Result<()> {
        self.file.flush()?;
        remove_if_exists(&self.rotated(self.max_files))?;
        for number in (1..self.max_files).rev() {
            let from = self.rotated(number);
            if from.exists() {
                fs::rename(&from, self.rotated(number + 1))?;
            }
        }
        if self.max_files > 0 {
            let pending = self.dir.join(format!("{}.rotating.log", self.stem));
            fs::rename(self.current(), &pending)?;
            let compressed = gzip(&pending, &self.rotated(1));
            // A file that could not be compressed is dropped rather than left to grow the
            // directory: conductor's own log must never fill the disk.
            remove_if_exists(&pending)?;
            compressed?;
        }
        self.file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(self.current())?;
        self.size = 0;
        Ok(())
    }
}

impl Write for RotatingFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let len = u64::try_from(buf.len()).unwrap_or(u64::MAX);
        if self.size > 0 && self.size.saturating_add(len) > self.max_size {
            self.rotate()?;
        }
        let written = self.file.write(buf)?;
        self.size = self
            .size
            .saturating_add(u64::try_from(written).unwrap_or(u64::MAX));
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    #[test]
    fn rotates_by_size_keeps_max_files_compressed_newest_first() {
        let dir = std::env::temp_dir().join(format!("rotating-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let mut file = RotatingFile::open(&dir, "conductor", 100, 2).unwrap();
        for n in 0..10 {
            // Each line is 50 bytes: two fit in one file.
            writeln!(file, "{n} {}", "x".repeat(47)).unwrap();
        }
        file.flush().unwrap();
        let current = fs::read_to_string(dir.join("conductor.log")).unwrap();
        assert!(
            current.starts_with("8 ") && current.contains("\n9 "),
            "{current}"
        );
        let unzip = |path: PathBuf| {
            let mut text = String::new();
            flate2::read::GzDecoder::new(File::open(path).unwrap())
                .read_to_string(&mut text)
                .unwrap();
            text
        };
        assert!(unzip(dir.join("conductor.1.log.gz")).starts_with("6 "));
        assert!(unzip(dir.join("conductor.2.log.gz")).starts_with("4 "));
        assert!(
            !dir.join("conductor.3.log.gz").exists(),
            "more than max_files kept"
        );
        let _ = fs::remove_dir_all(&dir);
    }
}
