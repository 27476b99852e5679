//! The compressor thread of a [`crate::Logs`], shared by all its services: gzips files the
//! writer thread rotated out, shifts each service's numbered files (`<service>.1.log.gz` newest)
//! and deletes those beyond `max_files`.
//! One thread for every service because rotations are rare (one per `max_size` written) and
//! the work is the same for all; each job names its service.
//! A file that cannot be compressed is kept uncompressed under its number (`<service>.1.log`),
//! so no line is lost to a compression failure. It never touches a current `<service>.log`.

use std::{
    collections::VecDeque,
    fs::{self, File},
    io::{self, BufReader, BufWriter},
    path::{Path, PathBuf},
    sync::mpsc,
};

use flate2::{Compression, write::GzEncoder};
use tokio::sync::oneshot;

use crate::writer::Reporter;

/// Buffer size for reading the rotated file and writing the gzip file.
const IO_BUFFER_BYTES: usize = 256 * 1024;

/// Work for the compressor, handled in order.
pub(crate) enum CompressJob {
    /// A file the writer renamed away from `<service>.log`, to become `<service>.1.log.gz`.
    Compress { service: Reporter, path: PathBuf },
    /// Answer once every earlier job (of every service) is done.
    Sync(oneshot::Sender<()>),
    /// Delete every numbered file of the service (after finishing or discarding its earlier
    /// jobs).
    Clear {
        service: Reporter,
        reply: mpsc::Sender<Result<(), (PathBuf, io::Error)>>,
    },
}

impl CompressJob {
    fn service(&self) -> Option<&str> {
        match self {
            CompressJob::Compress { service, .. } | CompressJob::Clear { service, .. } => {
                Some(&service.service)
            }
            CompressJob::Sync(_) => None,
        }
    }
}

pub(crate) struct Compressor {
    pub(crate) dir: PathBuf,
    pub(crate) max_files: usize,
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
                CompressJob::Compress { service, path } => {
                    // When the writer rotates faster than we compress, a file that `max_files`
                    // newer ones (or a clear) of the same service will push out anyway is not
                    // worth compressing.
                    let same_service = pending
                        .iter()
                        .filter(|job| job.service() == Some(service.service.as_str()));
                    let mut newer = 0;
                    let mut cleared = false;
                    for job in same_service {
                        match job {
                            CompressJob::Compress { .. } => newer += 1,
                            CompressJob::Clear { .. } => cleared = true,
                            CompressJob::Sync(_) => {}
                        }
                    }
                    if newer >= self.max_files || cleared {
                        self.remove(&service, &path);
                    } else {
                        self.compress(&service, &path);
                    }
                }
                CompressJob::Sync(reply) => {
                    let _ = reply.send(());
                }
                CompressJob::Clear { service, reply } => {
                    let _ = reply.send(self.clear(&service.service));
                }
            }
        }
    }

    fn numbered(&self, service: &str, number: usize, extension: &str) -> PathBuf {
        self.dir.join(format!("{service}.{number}.{extension}"))
    }

    fn compress(&self, service: &Reporter, path: &Path) {
        let temporary = self.dir.join(format!("{}.log.gz.tmp", service.service));
        let newest = self.numbered(&service.service, 1, "log.gz");
        match gzip(path, &temporary) {
            Ok(()) => {
                self.shift(service);
                match fs::rename(&temporary, &newest) {
                    Ok(()) => self.remove(service, path),
                    Err(error) => {
                        self.remove(service, &temporary);
                        self.keep_uncompressed(
                            service,
                            path,
                            &format!("renaming it failed: {error}"),
                        );
                    }
                }
            }
            Err(error) => {
                self.remove(service, &temporary);
                self.shift(service);
                self.keep_uncompressed(service, path, &format!("compressing it failed: {error}"));
            }
        }
    }

    /// Puts a rotated file in the numbered slot 1 without compressing it.
    fn keep_uncompressed(&self, service: &Reporter, path: &Path, why: &str) {
        let newest = self.numbered(&service.service, 1, "log");
        match fs::rename(path, &newest) {
            Ok(()) => service.problem(format!(
                "rotated log kept uncompressed as {}: {why}",
                newest.display()
            )),
            Err(error) => service.problem(format!(
                "rotated log left at {}: {why}; renaming it failed: {error}",
                path.display()
            )),
        }
    }

    /// Makes room for a new slot 1: `.N` becomes `.N+1`, the file in slot `max_files` goes.
    fn shift(&self, service: &Reporter) {
        let name = &service.service;
        for extension in ["log.gz", "log"] {
            self.remove(service, &self.numbered(name, self.max_files, extension));
        }
        for number in (1..self.max_files).rev() {
            for extension in ["log.gz", "log"] {
                let from = self.numbered(name, number, extension);
                let to = self.numbered(name, number + 1, extension);
                match fs::rename(&from, &to) {
                    Err(error) if error.kind() != io::ErrorKind::NotFound => {
                        service.problem(format!(
                            "could not shift rotated log {}: {error}",
                            from.display()
                        ));
                    }
                    _ => {}
                }
            }
        }
    }

    fn remove(&self, service: &Reporter, path: &Path) {
        if let Err(error) = remove_if_exists(path) {
            service.problem(format!("could not delete {}: {error}", path.display()));
        }
    }

    fn clear(&self, service: &str) -> Result<(), (PathBuf, io::Error)> {
        let mut first_error = None;
        // Slots beyond max_files may exist from a run with a larger setting.
        let mut number = 1;
        loop {
            let mut found = false;
            for extension in ["log.gz", "log"] {
                let path = self.numbered(service, number, extension);
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

pub(crate) fn gzip(from: &Path, to: &Path) -> io::Result<()> {
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
