//! The writer thread of one service: takes batches queued by the capture tasks, appends them to
//! `<dir>/<service>.log` in the file line format, rotates the file at `max_size` and hands
//! rotated files to the service's compressor thread.
//! Disk trouble (full disk, unwritable directory) is reported once; lines keep going to the
//! in-memory tail and writing is retried at most once a second while lines arrive.
//! It never blocks a capture task: they only lock the queue for a push.

use std::{
    collections::VecDeque,
    fs::{self, File, OpenOptions},
    io::{self, Read, Seek, SeekFrom, Write},
    path::PathBuf,
    sync::{
        Arc, Condvar, Mutex, MutexGuard, PoisonError,
        atomic::{AtomicU64, Ordering},
        mpsc,
    },
    thread,
    time::{Duration, Instant},
};

use tokio::sync::{broadcast, oneshot};

use crate::{
    LogProblem, LogsError, LogsErrorKind,
    compress::{CompressJob, Compressor, remove_if_exists},
    tail::{Batch, Tail},
};

/// Write to the file once this much formatted text is buffered.
const WRITE_CHUNK_BYTES: usize = 256 * 1024;
/// How often a failing directory or disk is tried again (only while lines arrive).
const RETRY_INTERVAL: Duration = Duration::from_secs(1);

/// Process-wide line counters.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) captured: AtomicU64,
    pub(crate) written: AtomicU64,
    pub(crate) dropped: AtomicU64,
    pub(crate) unwritten: AtomicU64,
}

/// Sends a problem to subscribers (and to tracing, so it is never silent).
#[derive(Clone)]
pub(crate) struct Reporter {
    pub(crate) service: String,
    pub(crate) problems: broadcast::Sender<LogProblem>,
}

impl Reporter {
    pub(crate) fn problem(&self, message: String) {
        tracing::warn!(service = %self.service, "{message}");
        let _ = self.problems.send(LogProblem {
            service: self.service.clone(),
            message,
        });
    }
}

/// Work for the writer, handled in queue order.
pub(crate) enum Job {
    Batch(Arc<Batch>),
    /// Answer once every earlier batch is in the file and pending compressions are done.
    Flush(oneshot::Sender<()>),
    /// Delete the service's files (after finishing earlier jobs).
    Clear(oneshot::Sender<Result<(), LogsError>>),
    /// Finish the queue, wait for the compressor, exit.
    Shutdown,
}

/// What the capture tasks and the writer share for one service.
pub(crate) struct ServiceLog {
    pub(crate) name: String,
    pub(crate) state: Mutex<ServiceState>,
    pub(crate) wake: Condvar,
}

pub(crate) struct ServiceState {
    pub(crate) tail: Tail,
    /// Timestamp of the newest batch, so a service's timestamps never go backwards.
    pub(crate) last_ms: u64,
    pub(crate) queue: VecDeque<Job>,
    /// Memory held by queued batches, bounded by the disk backlog limit.
    pub(crate) queued_bytes: usize,
    /// Lines not queued for the file because the backlog was full, not yet reported.
    pub(crate) dropped_unreported: u64,
    /// No writer thread: capture is memory-only.
    pub(crate) writer_stopped: bool,
}

impl ServiceLog {
    pub(crate) fn lock(&self) -> MutexGuard<'_, ServiceState> {
        // A panic while holding the lock leaves the queue and tail consistent enough to go on.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Settings of a writer.
pub(crate) struct WriterConfig {
    pub(crate) dir: PathBuf,
    pub(crate) max_size: u64,
    pub(crate) max_files: usize,
}

/// Starts the writer (and its compressor) thread for `service`.
pub(crate) fn spawn(
    service: Arc<ServiceLog>,
    config: WriterConfig,
    counters: Arc<Counters>,
    reporter: Reporter,
) -> io::Result<()> {
    let (compress_tx, compress_rx) = mpsc::channel();
    let compressor = Compressor {
        dir: config.dir.clone(),
        service: service.name.clone(),
        max_files: config.max_files,
        reporter: reporter.clone(),
    };
    let compressor = thread::Builder::new()
        .name(format!("logs-gzip-{}", service.name))
        .spawn(move || compressor.run(compress_rx))?;
    let writer = Writer {
        path: config.dir.join(format!("{}.log", service.name)),
        rotate_at: rotation_size(config.max_size),
        config,
        counters,
        reporter,
        file: None,
        file_len: 0,
        buffer: Vec::with_capacity(WRITE_CHUNK_BYTES + 4096),
        buffer_lines: 0,
        failing: None,
        next_rotation: 0,
        compress_tx,
        compressor: Some(compressor),
    };
    // Detached on purpose: the thread owns only its file and exits on `Job::Shutdown`, which
    // `Logs` sends when its last handle is dropped; `Logs::flush` is how callers wait for it.
    thread::Builder::new()
        .name(format!("logs-write-{}", service.name))
        .spawn(move || writer.run(&service))?;
    Ok(())
}

fn rotation_size(max_size: u64) -> u64 {
    if max_size == 0 { u64::MAX } else { max_size }
}

struct Failing {
    last_attempt: Instant,
    lines: u64,
}

struct Writer {
    config: WriterConfig,
    path: PathBuf,
    counters: Arc<Counters>,
    reporter: Reporter,
    file: Option<File>,
    /// Bytes in the current file (as written by us, plus what was there when opened).
    file_len: u64,
    /// Rotate before the file would grow past this.
    rotate_at: u64,
    buffer: Vec<u8>,
    buffer_lines: u64,
    failing: Option<Failing>,
    next_rotation: u64,
    compress_tx: mpsc::Sender<CompressJob>,
    compressor: Option<thread::JoinHandle<()>>,
}

impl Writer {
    fn run(mut self, service: &ServiceLog) {
        self.resume_interrupted_rotations();
        loop {
            let jobs = {
                let mut state = service.lock();
                while state.queue.is_empty() {
                    state = service
                        .wake
                        .wait(state)
                        .unwrap_or_else(PoisonError::into_inner);
                }
                std::mem::take(&mut state.queue)
            };
            let mut released = 0;
            for job in jobs {
                match job {
                    Job::Batch(batch) => {
                        released += batch.footprint();
                        self.write_batch(&batch);
                    }
                    Job::Flush(reply) => {
                        self.write_out();
                        self.sync_compressor();
                        let _ = reply.send(());
                    }
                    Job::Clear(reply) => {
                        let _ = reply.send(self.clear());
                    }
                    Job::Shutdown => {
                        self.write_out();
                        self.stop_compressor();
                        return;
                    }
                }
            }
            self.write_out();
            let mut state = service.lock();
            state.queued_bytes = state.queued_bytes.saturating_sub(released);
        }
    }

    /// Files a previous run renamed for compression but did not finish are compressed now.
    fn resume_interrupted_rotations(&mut self) {
        let prefix = format!("{}.log.rotating.", self.reporter.service);
        let Ok(entries) = fs::read_dir(&self.config.dir) else {
            return;
        };
        let mut found: Vec<(u64, PathBuf)> = entries
            .filter_map(Result::ok)
            .filter(|entry| entry.file_type().is_ok_and(|kind| kind.is_file()))
            .filter_map(|entry| {
                let name = entry.file_name().into_string().ok()?;
                let number = name.strip_prefix(&prefix)?.parse().ok()?;
                Some((number, entry.path()))
            })
            .collect();
        found.sort();
        for (number, path) in found {
            self.next_rotation = self.next_rotation.max(number + 1);
            let _ = self.compress_tx.send(CompressJob::Compress(path));
        }
    }

    fn write_batch(&mut self, batch: &Batch) {
        let n_lines = batch.lines.len() as u64;
        if self.file.is_none() && !self.open() {
            self.counters
                .unwritten
                .fetch_add(n_lines, Ordering::Relaxed);
            if let Some(failing) = &mut self.failing {
                failing.lines += n_lines;
            }
            return;
        }
        let timestamp = batch.timestamp();
        for (message, meta) in batch.iter() {
            let level = level_word(meta.level);
            let marker = if meta.continuation { "+ " } else { " " };
            let line_len = timestamp.len() + 1 + level.len() + marker.len() + message.len() + 1;
            let pending = self.file_len + self.buffer.len() as u64;
            if pending > 0 && pending + line_len as u64 > self.rotate_at {
                self.write_out();
                self.rotate();
            }
            self.buffer.extend_from_slice(timestamp.as_bytes());
            self.buffer.push(b' ');
            self.buffer.extend_from_slice(level.as_bytes());
            self.buffer.extend_from_slice(marker.as_bytes());
            self.buffer.extend_from_slice(message.as_bytes());
            self.buffer.push(b'\n');
            self.buffer_lines += 1;
            if self.buffer.len() >= WRITE_CHUNK_BYTES {
                self.write_out();
            }
        }
    }

    /// Appends the buffered lines to the file.
    fn write_out(&mut self) {
        if self.buffer.is_empty() {
            return;
        }
        let n_lines = std::mem::take(&mut self.buffer_lines);
        let result = match &mut self.file {
            Some(file) => file.write_all(&self.buffer),
            None => Err(io::Error::other("log file is not open")),
        };
        match result {
            Ok(()) => {
                self.file_len += self.buffer.len() as u64;
                self.counters.written.fetch_add(n_lines, Ordering::Relaxed);
            }
            Err(error) => {
                self.counters
                    .unwritten
                    .fetch_add(n_lines, Ordering::Relaxed);
                self.fail(&error, n_lines);
            }
        }
        self.buffer.clear();
    }

    /// Enters (or stays in) the failing state; only the first failure is reported.
    fn fail(&mut self, error: &io::Error, n_lines: u64) {
        self.file = None;
        match &mut self.failing {
            Some(failing) => {
                failing.last_attempt = Instant::now();
                failing.lines += n_lines;
            }
            None => {
                self.reporter.problem(format!(
                    "cannot write {}: {error}; lines are kept in memory only until writing works again",
                    self.path.display()
                ));
                self.failing = Some(Failing {
                    last_attempt: Instant::now(),
                    lines: n_lines,
                });
            }
        }
    }

    /// Opens (creating) the current file; false while failing and not yet time to retry.
    fn open(&mut self) -> bool {
        if self
            .failing
            .as_ref()
            .is_some_and(|failing| failing.last_attempt.elapsed() < RETRY_INTERVAL)
        {
            return false;
        }
        let opened = fs::create_dir_all(&self.config.dir).and_then(|()| {
            let mut file = OpenOptions::new()
                .read(true)
                .append(true)
                .create(true)
                .open(&self.path)?;
            let len = file.metadata()?.len();
            if self.failing.is_some() && len > 0 {
                // A failed write may have left half a line: start ours on a fresh one.
                let mut last = [0u8];
                file.seek(SeekFrom::End(-1))?;
                file.read_exact(&mut last)?;
                if last != *b"\n" {
                    file.write_all(b"\n")?;
                    return Ok((file, len + 1));
                }
            }
            Ok((file, len))
        });
        match opened {
            Ok((file, len)) => {
                self.file = Some(file);
                self.file_len = len;
                if let Some(failing) = self.failing.take() {
                    tracing::warn!(
                        service = %self.reporter.service,
                        n_lines = failing.lines,
                        "writing {} again; lines captured meanwhile are missing from it",
                        self.path.display()
                    );
                }
                true
            }
            Err(error) => {
                self.fail(&error, 0);
                false
            }
        }
    }

    /// Renames the full current file away for compression and starts a new one.
    fn rotate(&mut self) {
        if self.file.is_none() {
            return;
        }
        // Closed first: some platforms cannot rename an open file.
        self.file = None;
        let rotating = self.config.dir.join(format!(
            "{}.log.rotating.{}",
            self.reporter.service, self.next_rotation
        ));
        match fs::rename(&self.path, &rotating) {
            Ok(()) => {
                self.next_rotation += 1;
                self.rotate_at = rotation_size(self.config.max_size);
                if self.config.max_files == 0 {
                    let _ = remove_if_exists(&rotating);
                } else {
                    let _ = self.compress_tx.send(CompressJob::Compress(rotating));
                }
            }
            Err(error) => {
                // Keep appending to the oversized file rather than lose lines; try again after
                // another max_size.
                self.reporter.problem(format!(
                    "cannot rotate {}: {error}; the file keeps growing",
                    self.path.display()
                ));
                self.rotate_at = self
                    .file_len
                    .saturating_add(rotation_size(self.config.max_size));
            }
        }
        self.open();
    }

    fn sync_compressor(&self) {
        let (tx, rx) = mpsc::channel();
        if self.compress_tx.send(CompressJob::Sync(tx)).is_ok() {
            let _ = rx.recv();
        }
    }

    fn stop_compressor(&mut self) {
        self.sync_compressor();
        if let Some(compressor) = self.compressor.take() {
            // Closing the channel ends the compressor's loop.
            let (closed, _) = mpsc::channel();
            drop(std::mem::replace(&mut self.compress_tx, closed));
            let _ = compressor.join();
        }
    }

    fn clear(&mut self) -> Result<(), LogsError> {
        self.write_out();
        self.file = None;
        let error = |path, source| LogsError {
            service: self.reporter.service.clone(),
            kind: LogsErrorKind::Delete { path, source },
        };
        let (tx, rx) = mpsc::channel();
        let rotated = if self.compress_tx.send(CompressJob::Clear(tx)).is_ok() {
            rx.recv().unwrap_or(Ok(()))
        } else {
            Ok(())
        };
        let current = remove_if_exists(&self.path);
        self.file_len = 0;
        self.rotate_at = rotation_size(self.config.max_size);
        rotated.map_err(|(path, source)| error(path, source))?;
        current.map_err(|source| error(self.path.clone(), source))
    }
}

/// The level as written in files.
pub(crate) fn level_word(level: conductor_protocol::LogLevel) -> &'static str {
    use conductor_protocol::LogLevel;
    match level {
        LogLevel::Debug => "DEBUG",
        LogLevel::Info => "INFO",
        LogLevel::Warn => "WARN",
        LogLevel::Error => "ERROR",
    }
}
