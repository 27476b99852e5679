//! The writer thread of a [`crate::Logs`], shared by all its services: takes the batches the
//! capture tasks queued per service, appends them to `<dir>/<service>.log` in the file line
//! format, rotates each file at `max_size` and hands rotated files to the compressor thread.
//! One thread for every service (not one per service) so that a hundred services cost two
//! threads and a few kilobytes each: a service whose queue goes from empty to non-empty puts
//! itself on the shared ready list; the thread takes up to [`FAIR_SHARE_BYTES`] of a service's
//! queue, writes it, and moves on to the next ready service, so a bursting service cannot hold
//! up the others for long.
//! Disk trouble (full disk, unwritable directory) is reported once per service; lines keep going
//! to the in-memory tail and writing is retried at most once a second while lines arrive.
//! It never blocks a capture task: they only lock their queue (and, for an empty queue, the
//! ready list) for a push.

use std::{
    collections::{HashMap, VecDeque},
    fs::{self, File, OpenOptions},
    io::{self, Read, Seek, SeekFrom, Write},
    path::{Path, PathBuf},
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
/// Queued batch memory the writer takes from one service before serving the next ready one.
/// A read yields at most 64 KiB, so this is a few reads' worth: large enough that the
/// switching costs nothing against the writing, small enough that others wait milliseconds.
pub(crate) const FAIR_SHARE_BYTES: usize = 1024 * 1024;

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

/// Work for the writer, handled in each service's queue order.
pub(crate) enum Job {
    Batch(Arc<Batch>),
    /// Answer once every earlier batch is in the file and pending compressions are done.
    Flush(oneshot::Sender<()>),
    /// Delete the service's files (after finishing earlier jobs).
    Clear(oneshot::Sender<Result<(), LogsError>>),
}

/// What the capture tasks and the writer share for one service.
pub(crate) struct ServiceLog {
    pub(crate) name: String,
    pub(crate) state: Mutex<ServiceState>,
    /// The writer thread serving this service; `None` when it could not be started (capture is
    /// then memory-only).
    pub(crate) writer: Option<Arc<WriterHandle>>,
    /// The queued bytes of every service of the `Logs`, this one's included.
    pub(crate) backlog: Arc<std::sync::atomic::AtomicUsize>,
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
    /// On the writer's ready list (or being served): a push need not wake the writer.
    pub(crate) scheduled: bool,
}

impl ServiceLog {
    /// Takes `bytes` written or dropped off the shared backlog count.
    pub(crate) fn release_backlog(&self, bytes: usize) {
        let _ = self.backlog.fetch_update(
            std::sync::atomic::Ordering::Relaxed,
            std::sync::atomic::Ordering::Relaxed,
            |held| Some(held.saturating_sub(bytes)),
        );
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, ServiceState> {
        // A panic while holding the lock leaves the queue and tail consistent enough to go on.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues `job` (the caller holds `state`, this service's lock) and puts the service on the
    /// writer's ready list unless it is already there. False without a writer: the job is
    /// dropped, and with it any reply sender in it.
    pub(crate) fn enqueue(self: &Arc<Self>, state: &mut ServiceState, job: Job) -> bool {
        let Some(writer) = &self.writer else {
            return false;
        };
        state.queue.push_back(job);
        if !state.scheduled {
            state.scheduled = true;
            writer.ready(Arc::clone(self));
        }
        true
    }
}

/// Settings of the writer.
pub(crate) struct WriterConfig {
    pub(crate) dir: PathBuf,
    pub(crate) max_size: u64,
    pub(crate) max_files: usize,
}

/// The services waiting for the writer thread, and how to wake and stop it.
pub(crate) struct WriterHandle {
    ready: Mutex<Ready>,
    wake: Condvar,
}

struct Ready {
    services: VecDeque<Arc<ServiceLog>>,
    /// No more services will become ready: serve those on the list, then exit.
    shutdown: bool,
}

impl WriterHandle {
    fn lock(&self) -> MutexGuard<'_, Ready> {
        self.ready.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Puts `service` at the end of the ready list (callers set its `scheduled` first).
    pub(crate) fn ready(&self, service: Arc<ServiceLog>) {
        self.lock().services.push_back(service);
        self.wake.notify_one();
    }

    /// Lets the thread finish every queue and exit; `Logs` calls it when its last handle goes.
    pub(crate) fn shutdown(&self) {
        self.lock().shutdown = true;
        self.wake.notify_one();
    }

    /// The next service to serve; `None` once shut down and nothing is left.
    fn next(&self) -> Option<Arc<ServiceLog>> {
        let mut ready = self.lock();
        loop {
            if let Some(service) = ready.services.pop_front() {
                return Some(service);
            }
            if ready.shutdown {
                return None;
            }
            ready = self
                .wake
                .wait(ready)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }
}

/// Starts the writer thread (and its compressor thread) for all services of one `Logs`.
pub(crate) fn spawn(
    config: WriterConfig,
    counters: Arc<Counters>,
    problems: broadcast::Sender<LogProblem>,
) -> io::Result<Arc<WriterHandle>> {
    let (compress_tx, compress_rx) = mpsc::channel();
    let compressor = Compressor {
        dir: config.dir.clone(),
        max_files: config.max_files,
    };
    let compressor = thread::Builder::new()
        .name("logs-gzip".to_string())
        .spawn(move || compressor.run(compress_rx))?;
    let handle = Arc::new(WriterHandle {
        ready: Mutex::new(Ready {
            services: VecDeque::new(),
            shutdown: false,
        }),
        wake: Condvar::new(),
    });
    let writers = Writers {
        config: Arc::new(config),
        counters,
        problems,
        compress_tx,
        compressor,
        services: HashMap::new(),
        buffer: Vec::with_capacity(WRITE_CHUNK_BYTES + 4096),
    };
    let thread_handle = Arc::clone(&handle);
    // Detached on purpose: the thread owns only its files and exits after
    // `WriterHandle::shutdown`, which `Logs` calls when its last handle is dropped;
    // `Logs::flush` is how callers wait for it. If spawning fails, dropping `writers` closes
    // the compressor's channel, so that thread ends too.
    thread::Builder::new()
        .name("logs-write".to_string())
        .spawn(move || writers.run(&thread_handle))?;
    Ok(handle)
}

fn rotation_size(max_size: u64) -> u64 {
    if max_size == 0 { u64::MAX } else { max_size }
}

/// The writer thread's state: one [`Writer`] per service it has served.
struct Writers {
    config: Arc<WriterConfig>,
    counters: Arc<Counters>,
    problems: broadcast::Sender<LogProblem>,
    compress_tx: mpsc::Sender<CompressJob>,
    compressor: thread::JoinHandle<()>,
    services: HashMap<String, Writer>,
    /// The one formatting buffer, lent to the service being served: it is always written out
    /// before moving on, so services need not keep a quarter megabyte each.
    buffer: Vec<u8>,
}

impl Writers {
    fn run(mut self, handle: &WriterHandle) {
        while let Some(service) = handle.next() {
            if !self.services.contains_key(&service.name) {
                let writer = Writer::new(
                    &service.name,
                    Arc::clone(&self.config),
                    Arc::clone(&self.counters),
                    self.problems.clone(),
                    self.compress_tx.clone(),
                );
                self.services.insert(service.name.clone(), writer);
            }
            let Some(writer) = self.services.get_mut(&service.name) else {
                continue;
            };
            writer.buffer = std::mem::take(&mut self.buffer);
            writer.serve(&service, handle);
            self.buffer = std::mem::take(&mut writer.buffer);
        }
        // Closing the channel (every writer holds a sender) ends the compressor's loop once it
        // has done the jobs already sent.
        drop(self.services);
        drop(self.compress_tx);
        let _ = self.compressor.join();
    }
}

struct Failing {
    last_attempt: Instant,
    lines: u64,
}

/// The file side of one service.
struct Writer {
    config: Arc<WriterConfig>,
    path: PathBuf,
    counters: Arc<Counters>,
    reporter: Reporter,
    file: Option<File>,
    /// Bytes in the current file (as written by us, plus what was there when opened).
    file_len: u64,
    /// Rotate before the file would grow past this.
    rotate_at: u64,
    /// Empty and unallocated except while this service is served (see [`Writers::buffer`]).
    buffer: Vec<u8>,
    buffer_lines: u64,
    failing: Option<Failing>,
    next_rotation: u64,
    compress_tx: mpsc::Sender<CompressJob>,
}

impl Writer {
    fn new(
        service: &str,
        config: Arc<WriterConfig>,
        counters: Arc<Counters>,
        problems: broadcast::Sender<LogProblem>,
        compress_tx: mpsc::Sender<CompressJob>,
    ) -> Writer {
        let mut writer = Writer {
            path: config.dir.join(format!("{service}.log")),
            rotate_at: rotation_size(config.max_size),
            config,
            counters,
            reporter: Reporter {
                service: service.to_string(),
                problems,
            },
            file: None,
            file_len: 0,
            buffer: Vec::new(),
            buffer_lines: 0,
            failing: None,
            next_rotation: 0,
            compress_tx,
        };
        writer.resume_interrupted_rotations();
        writer
    }

    /// Does up to [`FAIR_SHARE_BYTES`] of the service's queued jobs, putting the service back on
    /// the ready list first when more remain.
    fn serve(&mut self, service: &Arc<ServiceLog>, handle: &WriterHandle) {
        let jobs = {
            let mut state = service.lock();
            let jobs = fair_share(&mut state.queue);
            if state.queue.is_empty() {
                state.scheduled = false;
            } else {
                handle.ready(Arc::clone(service));
            }
            jobs
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
                    // The compressor answers once it has done the rotations sent before; the
                    // writer goes on meanwhile instead of waiting for gzip.
                    if let Err(mpsc::SendError(CompressJob::Sync(reply))) =
                        self.compress_tx.send(CompressJob::Sync(reply))
                    {
                        let _ = reply.send(());
                    }
                }
                Job::Clear(reply) => {
                    let _ = reply.send(self.clear());
                }
            }
        }
        self.write_out();
        if released > 0 {
            let mut state = service.lock();
            state.queued_bytes = state.queued_bytes.saturating_sub(released);
            drop(state);
            service.release_backlog(released);
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
            let _ = self.compress_tx.send(CompressJob::Compress {
                service: self.reporter.clone(),
                path,
            });
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
        let rotating = self.config.dir.join(format!(
            "{}.log.rotating.{}",
            self.reporter.service, self.next_rotation
        ));
        match self.set_aside(&rotating) {
            Ok(()) => {
                self.next_rotation += 1;
                self.rotate_at = rotation_size(self.config.max_size);
                if self.config.max_files == 0 {
                    let _ = remove_if_exists(&rotating);
                } else {
                    let _ = self.compress_tx.send(CompressJob::Compress {
                        service: self.reporter.clone(),
                        path: rotating,
                    });
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
        if self.file.is_none() {
            self.open();
        }
    }

    /// Moves the full current file to `rotating` and starts a new one. On unix `<service>.log`
    /// is never missing, not even for an instant (a reader such as `tail -F`, a support
    /// script or the panel's "open the file" finds it throughout): the full file is linked to
    /// `rotating`, and a new empty file renamed over `<service>.log` (a rename replaces the
    /// name atomically). Either fails as a whole: the old file stays current.
    #[cfg(unix)]
    fn set_aside(&mut self, rotating: &Path) -> io::Result<()> {
        let fresh = self
            .config
            .dir
            .join(format!("{}.log.fresh", self.reporter.service));
        fs::hard_link(&self.path, rotating)?;
        let swapped = remove_if_exists(&fresh)
            .and_then(|()| {
                OpenOptions::new()
                    .read(true)
                    .append(true)
                    .create(true)
                    .open(&fresh)
            })
            .and_then(|file| fs::rename(&fresh, &self.path).map(|()| file));
        match swapped {
            Ok(file) => {
                self.file = Some(file);
                self.file_len = 0;
                Ok(())
            }
            Err(error) => {
                // Not set aside after all: its lines must not be compressed and kept writing.
                let _ = remove_if_exists(rotating);
                let _ = remove_if_exists(&fresh);
                Err(error)
            }
        }
    }

    /// Moves the full current file to `rotating`; the caller opens a new one. Closed first:
    /// Windows cannot rename an open file.
    #[cfg(not(unix))]
    fn set_aside(&mut self, rotating: &Path) -> io::Result<()> {
        self.file = None;
        fs::rename(&self.path, rotating)
    }

    fn clear(&mut self) -> Result<(), LogsError> {
        self.write_out();
        self.file = None;
        let error = |path, source| LogsError {
            service: self.reporter.service.clone(),
            kind: LogsErrorKind::Delete { path, source },
        };
        let (tx, rx) = mpsc::channel();
        let job = CompressJob::Clear {
            service: self.reporter.clone(),
            reply: tx,
        };
        let rotated = if self.compress_tx.send(job).is_ok() {
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

/// The front of `queue` up to [`FAIR_SHARE_BYTES`] of batches (at least one job).
fn fair_share(queue: &mut VecDeque<Job>) -> VecDeque<Job> {
    let mut bytes = 0;
    let mut n_jobs = 0;
    for job in queue.iter() {
        if bytes >= FAIR_SHARE_BYTES {
            break;
        }
        if let Job::Batch(batch) = job {
            bytes += batch.footprint();
        }
        n_jobs += 1;
    }
    if n_jobs == queue.len() {
        std::mem::take(queue)
    } else {
        queue.drain(..n_jobs).collect()
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
