//! The compressor thread of one service: gzips files the writer rotated out, shifts the
//! numbered files (`<service>.1.log.gz` newest) and deletes those beyond `max_files`.
//! A file that cannot be compressed is kept uncompressed under its number (`<service>.1.log`),
//! so no line is lost to a compression failure. It never touches the current `<service>.log`.

use std::{
    collections::VecDeque,
    fs::{self, File},
    io::{self, BufReader, BufWriter},
    path::{Path, PathBuf},
    sync::mpsc,
};

use flate2::{Compression, write::GzEncoder};

use crate::writer::Reporter;

/// Buffer size for reading the rotated file and writing the gzip file.
const IO_BUFFER_BYTES: usize = 256 * 1024;

/// Work for the compressor, handled in order.
pub(crate) enum CompressJob {
    /// A file the writer renamed away from `<service>.log`, to become `<service>.1.log.gz`.
    Compress(PathBuf),
    /// Answer once every earlier job is done.
    Sync(mpsc::Sender<()>),
    /// Delete every numbered file (after finishing or discarding earlier jobs).
    Clear(mpsc::Sender<Result<(), (PathBuf, io::Error)>>),
}

pub(crate) struct Compressor {
    pub(crate) dir: PathBuf,
    pub(crate) service: String,
    pub(crate) max_files: usize,
    pub(crate) reporter: Reporter,
}

impl Compressor {
    pub(crate) fn run(self, jobs: mpsc::Receiver<CompressJob>) {
        crate::platform::lower_thread_priority();
        let mut pending = VecDeque::new();
        loop {
            if pending.is_empty() {
                match jobs.recv() {
                    Ok(job) => pending.push_back(job),
                    Err(mpsc::RecvError) => return,
                }
            }
            pending.extend(jobs.try_iter());
            let Some(job) = pending.pop_front() else {
                continue;
            };
            match job {
                CompressJob::Compress(path) => {
                    // When the writer rotates faster than we compress, a file that `max_files`
                    // newer ones (or a clear) will push out anyway is not worth compressing.
                    let newer = pending
                        .iter()
                        .filter(|job| matches!(job, CompressJob::Compress(_)))
                        .count();
                    let cleared = pending
                        .iter()
                        .any(|job| matches!(job, CompressJob::Clear(_)));
                    if newer >= self.max_files || cleared {
                        self.remove(&path);
                    } else {
                        self.compress(&path);
                    }
                }
                CompressJob::Sync(reply) => {
                    let _ = reply.send(());
                }
                CompressJob::Clear(reply) => {
                    let _ = reply.send(self.clear());
                }
            }
        }
    }

    fn numbered(&self, number: usize, extension: &str) -> PathBuf {
        self.dir
            .join(format!("{}.{number}.{extension}", self.service))
    }

    fn compress(&self, path: &Path) {
        let temporary = self.dir.join(format!("{}.log.gz.tmp", self.service));
        let newest = self.numbered(1, "log.gz");
        match gzip(path, &temporary) {
            Ok(()) => {
                self.shift();
                match fs::rename(&temporary, &newest) {
                    Ok(()) => self.remove(path),
                    Err(error) => {
                        self.remove(&temporary);
                        self.keep_uncompressed(path, &format!("renaming it failed: {error}"));
                    }
                }
            }
            Err(error) => {
                self.remove(&temporary);
                self.shift();
                self.keep_uncompressed(path, &format!("compressing it failed: {error}"));
            }
        }
    }

    /// Puts a rotated file in the numbered slot 1 without compressing it.
    fn keep_uncompressed(&self, path: &Path, why: &str) {
        let newest = self.numbered(1, "log");
        match fs::rename(path, &newest) {
            Ok(()) => self.reporter.problem(format!(
                "rotated log kept uncompressed as {}: {why}",
                newest.display()
            )),
            Err(error) => self.reporter.problem(format!(
                "rotated log left at {}: {why}; renaming it failed: {error}",
                path.display()
            )),
        }
    }

    /// Makes room for a new slot 1: `.N` becomes `.N+1`, the file in slot `max_files` goes.
    fn shift(&self) {
        for extension in ["log.gz", "log"] {
            self.remove(&self.numbered(self.max_files, extension));
        }
        for number in (1..self.max_files).rev() {
            for extension in ["log.gz", "log"] {
                let from = self.numbered(number, extension);
                let to = self.numbered(number + 1, extension);
                match fs::rename(&from, &to) {
                    Err(error) if error.kind() != io::ErrorKind::NotFound => {
                        self.reporter.problem(format!(
                            "could not shift rotated log {}: {error}",
                            from.display()
                        ));
                    }
                    _ => {}
                }
            }
        }
    }

    fn remove(&self, path: &Path) {
        if let Err(error) = remove_if_exists(path) {
            self.reporter
                .problem(format!("could not delete {}: {error}", path.display()));
        }
    }

    fn clear(&self) -> Result<(), (PathBuf, io::Error)> {
        let mut first_error = None;
        // Slots beyond max_files may exist from a run with a larger setting.
        let mut number = 1;
        loop {
            let mut found = false;
            for extension in ["log.gz", "log"] {
                let path = self.numbered(number, extension);
                match fs::remove_file(&path) {
                    Ok(()) => found = true,
                    Err(error) if error.kind() == io::ErrorKind::NotFound => {}
                    Err(error) => {
                        found = true;
                        first_error.get_or_insert((path, error));
                    }
                }
            }
            if !found && number >= self.max_files {
                break;
            }
            number += 1;
        }
        first_error.map_or(Ok(()), Err)
    }
}

pub(crate) fn remove_if_exists(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(error) if error.kind() != io::ErrorKind::NotFound => Err(error),
        _ => Ok(()),
    }
}

fn gzip(from: &Path, to: &Path) -> io::Result<()> {
    let mut input = BufReader::with_capacity(IO_BUFFER_BYTES, File::open(from)?);
    let output = BufWriter::with_capacity(IO_BUFFER_BYTES, File::create(to)?);
    // Fast compression: log text still shrinks about tenfold, and at the default level gzip
    // alone would cost more CPU than capturing the lines did.
    let mut encoder = GzEncoder::new(output, Compression::fast());
    io::copy(&mut input, &mut encoder)?;
    encoder
        .finish()?
        .into_inner()
        .map_err(io::IntoInnerError::into_error)?;
    Ok(())
}
