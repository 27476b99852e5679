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

    /// Every path a reader (`tail -F`, a support script, a test) may look at exists throughout:
    /// `<stem>.log` is replaced, never removed, and each numbered slot is overwritten by the
    /// next newer one with a rename, so no file is missing for an instant.
    fn rotate(&mut self) -> io::Result<()> {
        self.file.flush()?;
        if self.max_files == 0 {
            self.file.set_len(0)?;
            self.size = 0;
            return Ok(());
        }
        let pending = self.dir.join(format!("{}.rotating.log", self.stem));
        let fresh = self.dir.join(format!("{}.fresh.log", self.stem));
        remove_if_exists(&pending)?;
        remove_if_exists(&fresh)?;
        fs::hard_link(self.current(), &pending)?;
        let file = OpenOptions::new().create(true).append(true).open(&fresh)?;
        fs::rename(&fresh, self.current())?;
        self.file = file;
        self.size = 0;

        let compressed = self.dir.join(format!("{}.compressing.log.gz", self.stem));
        let gzipped = gzip(&pending, &compressed);
        // A file that could not be compressed is dropped rather than left to grow the
        // directory: conductor's own log must never fill the disk.
        remove_if_exists(&pending)?;
        if let Err(error) = gzipped {
            remove_if_exists(&compressed)?;
            return Err(error);
        }
        let copy = self.dir.join(format!("{}.shifting.log.gz", self.stem));
        for number in (1..self.max_files).rev() {
            let from = self.rotated(number);
            if from.exists() {
                remove_if_exists(&copy)?;
                fs::hard_link(&from, &copy)?;
                fs::rename(&copy, self.rotated(number + 1))?;
            }
        }
        fs::rename(&compressed, self.rotated(1))
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

    #[test]
    fn a_reader_never_finds_the_current_or_a_numbered_file_missing() {
        let dir = std::env::temp_dir().join(format!("rotating-reader-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let mut file = RotatingFile::open(&dir, "conductor", 64 * 1024, 3).unwrap();
        let line = format!("{}\n", "x".repeat(999));
        // Two rotations first, so both slots the reader watches exist before it starts.
        for _ in 0..140 {
            file.write_all(line.as_bytes()).unwrap();
        }
        let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let reader = std::thread::spawn({
            let dir = dir.clone();
            let done = std::sync::Arc::clone(&done);
            move || {
                let mut missing = std::collections::BTreeMap::<&str, u64>::new();
                let mut looks = 0u64;
                while !done.load(std::sync::atomic::Ordering::Relaxed) {
                    for name in ["conductor.log", "conductor.1.log.gz", "conductor.2.log.gz"] {
                        if !dir.join(name).exists() {
                            *missing.entry(name).or_default() += 1;
                        }
                    }
                    looks += 1;
                }
                (missing, looks)
            }
        });
        for _ in 0..3_000 {
            file.write_all(line.as_bytes()).unwrap();
        }
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        let (missing, looks) = reader.join().unwrap();
        assert!(looks > 0);
        assert!(
            missing.is_empty(),
            "a reader found these missing (times seen): {missing:?}"
        );
        let leftovers: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .filter(|name| {
                !name.starts_with("conductor.log")
                    && !name.starts_with("conductor.1.")
                    && !name.starts_with("conductor.2.")
                    && !name.starts_with("conductor.3.")
            })
            .collect();
        assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn with_max_files_zero_the_file_is_emptied_in_place() {
        let dir = std::env::temp_dir().join(format!("rotating-zero-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let mut file = RotatingFile::open(&dir, "conductor", 100, 0).unwrap();
        for n in 0..5 {
            writeln!(file, "{n} {}", "x".repeat(47)).unwrap();
        }
        file.flush().unwrap();
        let current = fs::read_to_string(dir.join("conductor.log")).unwrap();
        assert!(current.starts_with("4 "), "{current}");
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 1);
        let _ = fs::remove_dir_all(&dir);
    }
}
