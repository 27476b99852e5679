//! [`Logs`], the handle the supervisor holds: capture tasks reading child pipes, `record` for
//! lines conductor writes about a service, `get`/`subscribe` for readers, `clear`, `flush`.
//! A capture task only reads, frames, detects levels and pushes one batch per read into the
//! service's tail and write queue under a short lock; it never waits on the disk or on readers.
//! When the write queue of a service holds [`MAX_BACKLOG_BYTES`], further batches still reach
//! the tail but not the file: they are counted as dropped, reported as a [`LogProblem`] and
//! noted in the service's log.
//! The disk side is one writer thread and one compressor thread per [`Logs`] (see the `writer`
//! module), whatever the number of services.

use std::{
    collections::HashMap,
    path::PathBuf,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
    time::SystemTime,
};

use conductor_protocol::{LogEntry, LogLevel};
use tokio::{
    io::{AsyncRead, AsyncReadExt},
    sync::{broadcast, oneshot},
    task::JoinHandle,
};

use crate::{
    LogsError,
    frame::LineFramer,
    level::detect_level,
    tail::{Batch, Tail, materialise},
    writer::{self, Counters, Job, Reporter, ServiceLog, ServiceState, WriterConfig, WriterHandle},
};

/// Default size at which a service's log file is rotated (10 MB).
pub const DEFAULT_MAX_SIZE: u64 = 10 * 1000 * 1000;
/// Default number of rotated files kept per service (besides the current file).
pub const DEFAULT_MAX_FILES: usize = 10;
/// Default number of entries kept in memory per service.
pub const DEFAULT_TAIL: usize = 10_000;
/// Default bytes the in-memory entries of one service may count (4 MiB, see
/// [`LogConfig::tail_bytes`]): 10 000 entries of up to about 220 bytes of text fit, so for ordinary
/// services [`DEFAULT_TAIL`] decides; with entries of up to 64 KiB the line bound alone would let
/// one service hold 640 MiB.
pub const DEFAULT_TAIL_BYTES: usize = 4 * 1024 * 1024;
/// What each in-memory entry counts against [`LogConfig::tail_bytes`] on top of its message.
///
/// About what a line alone in its pipe read costs besides its text: the shared batch (80
/// bytes with its reference counts), its slot in the tail (8), its line metadata as allocated
/// (32) and the read's spare text capacity (64). Lines arriving many to a read share those and
/// cost less, so for them the bound is on the safe side.
pub const TAIL_ENTRY_OVERHEAD_BYTES: usize = 192;
/// Memory a service's not-yet-written lines may take before lines are dropped from the file.
pub const MAX_BACKLOG_BYTES: usize = 64 * 1024 * 1024;
/// Memory all services' not-yet-written lines may take together: with a bound per service
/// only, a flood from 16 services could queue 1 GiB while the disk catches up.
pub const MAX_TOTAL_BACKLOG_BYTES: usize = 64 * 1024 * 1024;

/// Most bytes read from a pipe at once: the default Linux pipe capacity, so under load one read
/// empties the pipe.
const READ_CHUNK_BYTES: usize = 64 * 1024;
/// The read buffer a capture starts with. A quiet service never fills it, and two buffers per
/// service at the full size were a tenth of conductor's memory; a read that fills the buffer
/// doubles it, so a chatty service reaches the full size within a few reads.
const FIRST_READ_CHUNK_BYTES: usize = 4 * 1024;

/// Where and how much to keep.
///
/// Build it with [`LogConfig::new`], or name the fields you set and take the rest from
/// [`LogConfig::default`] (`LogConfig { dir, ..LogConfig::default() }`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// Directory of the `<service>.log` files; created when missing.
    pub dir: PathBuf,
    /// Rotate a service's file before it grows past this many bytes (0: never rotate).
    pub max_size: u64,
    /// Rotated files kept per service, besides the current file (0: rotated files are deleted).
    pub max_files: usize,
    /// Entries kept in memory per service, at most (0: none).
    pub tail: usize,
    /// Bytes the entries kept in memory per service may count, at most: each counts its
    /// message's length plus [`TAIL_ENTRY_OVERHEAD_BYTES`]. The oldest entries go first until
    /// both this and [`LogConfig::tail`] hold; an entry counting more than this on its own is
    /// not kept (0: none).
    ///
    /// The oldest kept entry keeps alive the rest of its batch (the text of one pipe read, or of
    /// one [`Logs::record`] message), so the memory really held may exceed this by that much.
    pub tail_bytes: usize,
}

impl LogConfig {
    /// The SPEC defaults (10 MB, 10 files, 10 000 entries) and [`DEFAULT_TAIL_BYTES`] in `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> LogConfig {
        LogConfig {
            dir: dir.into(),
            ..LogConfig::default()
        }
    }
}

impl Default for LogConfig {
    /// The defaults of [`LogConfig::new`] in `logs` (relative to the current directory); callers
    /// normally set `dir`.
    fn default() -> LogConfig {
        LogConfig {
            dir: PathBuf::from("logs"),
            max_size: DEFAULT_MAX_SIZE,
            max_files: DEFAULT_MAX_FILES,
            tail: DEFAULT_TAIL,
            tail_bytes: DEFAULT_TAIL_BYTES,
        }
    }
}

/// Reads followers may fall behind by (see [`Logs::subscribe`]). A read a follower has not
/// taken yet stays alive in the channel (up to 64 KiB of text) even after the tail let it go,
/// so a stalled follower holds 16 MiB at most, until it catches up; a service that prints a
/// line per write fills a read per line, so fewer places would drop lines of a follower that
/// is only a moment late.
const LIVE_CAPACITY: usize = 256;

/// The lines one capture read (or one [`Logs::record`]) brought, as [`Logs::subscribe`]rs get
/// them: shared with the tail, so a follower that takes a few of a flood's lines copies only
/// those.
#[derive(Clone)]
pub struct LiveLines {
    service: Arc<ServiceLog>,
    batch: Arc<Batch>,
}

impl LiveLines {
    /// The service they belong to.
    pub fn service(&self) -> &str {
        &self.service.name
    }

    /// How many lines (pieces of over-long lines count one each).
    pub fn len(&self) -> usize {
        self.batch.lines.len()
    }

    /// Whether there are none (never, as sent).
    pub fn is_empty(&self) -> bool {
        self.batch.lines.is_empty()
    }

    /// The first `n` lines (all of them if there are fewer) as entries, oldest first.
    pub fn entries(&self, n: usize) -> Vec<LogEntry> {
        let n = n.min(self.len());
        materialise((0..n).map(|index| (self.service(), &self.batch, index)))
    }
}

impl std::fmt::Debug for LiveLines {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveLines")
            .field("service", &self.service())
            .field("lines", &self.len())
            .finish()
    }
}

/// Which pipe of a child a capture reads; decides the level of lines without a level word.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stream {
    /// Standard output: lines default to info.
    Stdout,
    /// Standard error: lines default to warn.
    Stderr,
}

/// Something went wrong writing a service's log (the lines are still in memory), or lines were
/// dropped from its file; meant to become a `service:error` event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogProblem {
    /// The service.
    pub service: String,
    /// What happened, for people.
    pub message: String,
}

/// What one capture read before its pipe closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CaptureSummary {
    /// Lines (pieces of over-long lines count one each).
    pub lines: u64,
    /// Bytes read from the pipe.
    pub bytes: u64,
}

/// Line counters since [`Logs::new`], over all services.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LogStats {
    /// Lines captured or recorded (all of them reach the in-memory tail).
    pub lines_captured: u64,
    /// Lines written to a log file.
    pub lines_written: u64,
    /// Lines not written because the disk fell behind by more than [`MAX_BACKLOG_BYTES`].
    pub lines_dropped: u64,
    /// Lines not written because the file could not be written (disk full, unwritable
    /// directory).
    pub lines_unwritten: u64,
}

/// The log capture of all services; cheap to clone (a shared handle).
///
/// One writer thread and one compressor thread serve all services of a `Logs` (and its
/// clones); they start with the first service and stop, after writing what was captured, when
/// the last handle (including those held by running captures) is dropped.
#[derive(Clone)]
pub struct Logs {
    inner: Arc<Inner>,
}

struct Inner {
    config: LogConfig,
    services: Mutex<HashMap<String, Arc<ServiceLog>>>,
    /// Started with the first service (and tried again with the next one if that failed).
    writer: Mutex<Option<Arc<WriterHandle>>>,
    counters: Arc<Counters>,
    live: broadcast::Sender<LiveLines>,
    problems: broadcast::Sender<LogProblem>,
    seq: AtomicU64,
    /// Memory held by every service's queued batches together (see
    /// [`MAX_TOTAL_BACKLOG_BYTES`]).
    backlog: Arc<std::sync::atomic::AtomicUsize>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        let writer = self
            .writer
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(writer) = writer.take() {
            writer.shutdown();
        }
    }
}

impl std::fmt::Debug for Logs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Logs")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl Logs {
    /// Log capture into `config.dir`.
    ///
    /// Never fails: when the directory cannot be created or written, each service's first
    /// write reports one [`LogProblem`], capture goes on in memory, and writing is tried again
    /// (at most once a second) as lines arrive.
    pub fn new(config: LogConfig) -> Logs {
        // Failure is reported per service by its writer, once someone can be subscribed.
        let _ = std::fs::create_dir_all(&config.dir);
        Logs {
            inner: Arc::new(Inner {
                config,
                services: Mutex::new(HashMap::new()),
                writer: Mutex::new(None),
                counters: Arc::new(Counters::default()),
                live: broadcast::channel(LIVE_CAPACITY).0,
                problems: broadcast::channel(64).0,
                seq: AtomicU64::new(0),
                backlog: Default::default(),
            }),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &LogConfig {
        &self.inner.config
    }

    /// Starts a task reading `reader` until end of file (or a read error, reported as a
    /// [`LogProblem`]), capturing every line as `service`'s.
    ///
    /// The task waits on nothing but the reader, so the child is never blocked by conductor.
    pub fn capture<R>(&self, service: &str, stream: Stream, reader: R) -> JoinHandle<CaptureSummary>
    where
        R: AsyncRead + Unpin + Send + 'static,
    {
        let logs = self.clone();
        let service = self.service(service);
        tokio::spawn(async move { logs.run_capture(&service, stream, reader).await })
    }

    async fn run_capture<R>(
        &self,
        service: &Arc<ServiceLog>,
        stream: Stream,
        mut reader: R,
    ) -> CaptureSummary
    where
        R: AsyncRead + Unpin,
    {
        let mut summary = CaptureSummary::default();
        let mut framer = LineFramer::new();
        let mut chunk = vec![0u8; FIRST_READ_CHUNK_BYTES];
        // Continuation pieces keep the level of their line's first piece.
        let mut line_level = LogLevel::Info;
        let mut add = |batch: &mut Batch, piece: crate::Piece<'_>| {
            let message = String::from_utf8_lossy(piece.bytes);
            if !piece.continuation {
                line_level = detect_level(&message, stream);
            }
            batch.push(&message, line_level, piece.continuation);
        };
        loop {
            let n_bytes = match reader.read(&mut chunk).await {
                Ok(0) => break,
                Ok(n_bytes) => n_bytes,
                Err(error) if error.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(error) => {
                    self.reporter(&service.name)
                        .problem(format!("reading its {stream:?} failed: {error}"));
                    break;
                }
            };
            summary.bytes += n_bytes as u64;
            let mut batch = Batch::new(n_bytes + 64);
            framer.push(&chunk[..n_bytes], &mut |piece| add(&mut batch, piece));
            summary.lines += batch.lines.len() as u64;
            self.submit(service, batch);
            if n_bytes == chunk.len() && chunk.len() < READ_CHUNK_BYTES {
                chunk.resize(chunk.len() * 2, 0);
            }
        }
        let mut batch = Batch::new(0);
        framer.finish(&mut |piece| add(&mut batch, piece));
        summary.lines += batch.lines.len() as u64;
        self.submit(service, batch);
        self.report_drops(service);
        summary
    }

    /// Adds a line conductor itself writes about `service` (to the tail and the file, like a
    /// captured line); a multi-line message becomes one entry per line.
    pub fn record(&self, service: &str, level: LogLevel, message: impl Into<String>) {
        let message = message.into();
        let mut batch = Batch::new(message.len());
        for line in message.split('\n') {
            batch.push(line.strip_suffix('\r').unwrap_or(line), level, false);
        }
        let service = self.service(service);
        self.submit(&service, batch);
    }

    /// The newest `lines` entries of `service`, or of all services merged by timestamp when
    /// `None`; oldest first. An unknown service has no entries.
    ///
    /// `lines` comes from clients and may be anything up to `usize::MAX`: work and memory
    /// follow what is kept (at most [`LogConfig::tail`] entries per service), never `lines`.
    pub fn get(&self, service: Option<&str>, lines: usize) -> Vec<LogEntry> {
        // Capped here rather than trusted to `Tail::newest`, so nothing is sized by `lines`. The
        // merged result is not capped at one tail: it may hold up to `tail` of each service.
        let per_service = lines.min(self.inner.config.tail);
        let services: Vec<Arc<ServiceLog>> = {
            let map = self.services();
            match service {
                Some(name) => map.get(name).cloned().into_iter().collect(),
                None => map.values().cloned().collect(),
            }
        };
        let mut picked: Vec<(&str, Arc<Batch>, usize)> = Vec::new();
        for service in &services {
            let newest = service.lock().tail.newest(per_service);
            picked.extend(
                newest
                    .into_iter()
                    .map(|(batch, index)| (service.name.as_str(), batch, index)),
            );
        }
        if services.len() > 1 {
            // Within a service both keys only grow, so the merge keeps each service's order.
            picked.sort_by_key(|(_, batch, index)| (batch.timestamp_ms, batch.seq, *index));
            // Subtracting `lines` (not adding to it) cannot overflow, whatever its value.
            picked.drain(..picked.len().saturating_sub(lines));
        }
        materialise(
            picked
                .iter()
                .map(|(service, batch, index)| (*service, batch, *index)),
        )
    }

    /// Empties every tail and deletes every service's current and rotated files.
    ///
    /// Only services seen since [`Logs::new`] are known: files of other services in the
    /// directory are left alone (it also holds conductor's own log).
    pub async fn clear(&self) -> Result<(), LogsError> {
        let mut replies = Vec::new();
        for service in self.services().values() {
            let mut state = service.lock();
            state.tail.clear();
            // Unwritten batches would be deleted right after being written. Their memory leaves
            // the backlog count with them: a count left at the limit with nothing queued would
            // keep every later line of the service from its file, for good.
            let mut dropped_bytes = 0;
            state.queue.retain(|job| match job {
                Job::Batch(batch) => {
                    dropped_bytes += batch.footprint();
                    false
                }
                Job::Flush(_) | Job::Clear(_) => true,
            });
            debug_assert!(
                dropped_bytes <= state.queued_bytes,
                "queued batches are counted in queued_bytes"
            );
            state.queued_bytes = state.queued_bytes.saturating_sub(dropped_bytes);
            service.release_backlog(dropped_bytes);
            let (tx, rx) = oneshot::channel();
            if service.enqueue(&mut state, Job::Clear(tx)) {
                replies.push(rx);
            }
        }
        let mut result = Ok(());
        for reply in replies {
            // A writer that is gone has nothing left to delete.
            if let Ok(Err(error)) = reply.await
                && result.is_ok()
            {
                result = Err(error);
            }
        }
        result
    }

    /// The lines of every service from now on, one [`LiveLines`] per capture read (or
    /// [`Logs::record`]); a receiver that falls more than 256 of them behind gets
    /// [`broadcast::error::RecvError::Lagged`] and goes on. While nobody subscribes, nothing
    /// is sent; a receiver only costs a reference count per read, and copies what it takes.
    pub fn subscribe(&self) -> broadcast::Receiver<LiveLines> {
        self.inner.live.subscribe()
    }

    /// Problems from now on: disk errors and dropped-line counts, by service.
    pub fn problems(&self) -> broadcast::Receiver<LogProblem> {
        self.inner.problems.subscribe()
    }

    /// Waits until every line captured so far is written (or known unwritable) and pending
    /// compressions are done.
    pub async fn flush(&self) {
        let mut replies = Vec::new();
        for service in self.services().values() {
            let mut state = service.lock();
            let (tx, rx) = oneshot::channel();
            if service.enqueue(&mut state, Job::Flush(tx)) {
                replies.push(rx);
            }
        }
        for reply in replies {
            let _ = reply.await;
        }
    }

    /// Line counters since [`Logs::new`].
    pub fn stats(&self) -> LogStats {
        let counters = &self.inner.counters;
        LogStats {
            lines_captured: counters.captured.load(Ordering::Relaxed),
            lines_written: counters.written.load(Ordering::Relaxed),
            lines_dropped: counters.dropped.load(Ordering::Relaxed),
            lines_unwritten: counters.unwritten.load(Ordering::Relaxed),
        }
    }

    fn services(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<ServiceLog>>> {
        self.inner
            .services
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn reporter(&self, service: &str) -> Reporter {
        Reporter {
            service: service.to_string(),
            problems: self.inner.problems.clone(),
        }
    }

    /// The service's shared state, created on first use (starting the writer thread with the
    /// first service).
    fn service(&self, name: &str) -> Arc<ServiceLog> {
        let mut services = self.services();
        if let Some(service) = services.get(name) {
            return Arc::clone(service);
        }
        let writer = self.writer(name);
        let service = Arc::new(ServiceLog {
            name: name.to_string(),
            state: Mutex::new(ServiceState {
                tail: Tail::new(self.inner.config.tail, self.inner.config.tail_bytes),
                last_ms: 0,
                queue: Default::default(),
                queued_bytes: 0,
                dropped_unreported: 0,
                scheduled: false,
            }),
            writer,
            backlog: Arc::clone(&self.inner.backlog),
        });
        if let Some(writer) = &service.writer {
            // Served once with an empty queue, so that the writer picks up its interrupted
            // rotations now rather than with its first line.
            service.lock().scheduled = true;
            writer.ready(Arc::clone(&service));
        }
        services.insert(name.to_string(), Arc::clone(&service));
        service
    }

    /// The writer thread, started if this is the first service (or starting failed before);
    /// `None`, reported as a problem of `service`, if it cannot be started.
    fn writer(&self, service: &str) -> Option<Arc<WriterHandle>> {
        let mut writer = self
            .inner
            .writer
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(writer) = &*writer {
            return Some(Arc::clone(writer));
        }
        let config = WriterConfig {
            dir: self.inner.config.dir.clone(),
            max_size: self.inner.config.max_size,
            max_files: self.inner.config.max_files,
        };
        match writer::spawn(
            config,
            Arc::clone(&self.inner.counters),
            self.inner.problems.clone(),
        ) {
            Ok(started) => Some(Arc::clone(writer.insert(started))),
            Err(error) => {
                self.reporter(service).problem(format!(
                    "cannot start its log writer thread: {error}; lines are kept in memory only"
                ));
                None
            }
        }
    }

    /// Stamps `batch` and hands it to the tail, the writer and followers.
    fn submit(&self, service: &Arc<ServiceLog>, batch: Batch) {
        let n_lines = batch.lines.len() as u64;
        if n_lines == 0 {
            return;
        }
        let now_ms = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |since| {
                u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
            });
        let batch = {
            let mut state = service.lock();
            let batch = self.stamp(&mut state, batch, now_ms);
            let footprint = batch.footprint();
            if service.writer.is_none() {
                let counters = &self.inner.counters;
                counters.unwritten.fetch_add(n_lines, Ordering::Relaxed);
            } else if state.queued_bytes + footprint > MAX_BACKLOG_BYTES
                || service.backlog.load(Ordering::Relaxed) + footprint > MAX_TOTAL_BACKLOG_BYTES
            {
                state.dropped_unreported += n_lines;
                let counters = &self.inner.counters;
                counters.dropped.fetch_add(n_lines, Ordering::Relaxed);
            } else {
                if state.dropped_unreported > 0 {
                    self.note_drops(service, &mut state, now_ms);
                }
                state.queued_bytes += footprint;
                service.backlog.fetch_add(footprint, Ordering::Relaxed);
                service.enqueue(&mut state, Job::Batch(Arc::clone(&batch)));
            }
            batch
        };
        if self.inner.live.receiver_count() > 0 {
            let _ = self.inner.live.send(LiveLines {
                service: Arc::clone(service),
                batch,
            });
        }
    }

    /// Gives `batch` its timestamp and sequence number and appends it to the tail.
    fn stamp(&self, state: &mut ServiceState, mut batch: Batch, now_ms: u64) -> Arc<Batch> {
        self.inner
            .counters
            .captured
            .fetch_add(batch.lines.len() as u64, Ordering::Relaxed);
        batch.timestamp_ms = now_ms.max(state.last_ms);
        state.last_ms = batch.timestamp_ms;
        batch.seq = self.inner.seq.fetch_add(1, Ordering::Relaxed);
        let batch = Arc::new(batch);
        state.tail.push(Arc::clone(&batch));
        batch
    }

    /// Reports dropped lines not yet reported, even if the backlog is still full.
    fn report_drops(&self, service: &Arc<ServiceLog>) {
        let mut state = service.lock();
        if state.dropped_unreported > 0 {
            let now_ms = state.last_ms;
            self.note_drops(service, &mut state, now_ms);
        }
    }

    /// Reports the dropped-line count as a problem and as a line in the service's own log.
    fn note_drops(&self, service: &Arc<ServiceLog>, state: &mut ServiceState, now_ms: u64) {
        let n_dropped = std::mem::take(&mut state.dropped_unreported);
        let message = format!(
            "conductor: {n_dropped} lines of this service were not written to its log file \
             because the disk fell behind (they were kept in memory only)"
        );
        let mut note = Batch::new(message.len());
        note.push(&message, LogLevel::Warn, false);
        let note = self.stamp(state, note, now_ms);
        state.queued_bytes += note.footprint();
        service
            .backlog
            .fetch_add(note.footprint(), Ordering::Relaxed);
        service.enqueue(state, Job::Batch(note));
        self.reporter(&service.name).problem(message);
    }
}
