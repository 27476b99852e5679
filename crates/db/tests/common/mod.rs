//! Helpers shared by this crate's integration tests beyond the workspace's harness
//! (`conductor-test-support`): migration directories, a content dump to compare databases,
//! redaction for snapshots, and a guard for a child process holding an SQLite lock.
//! No assertions about conductor-db live here.

#![expect(
    dead_code,
    reason = "each test file uses a different subset of these helpers"
)]

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use conductor_test_support::TempDir;
use rusqlite::Connection;

/// The workspace's migrations folder (what `Migrations::Embedded` holds).
pub fn workspace_migrations() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../migrations")
}

/// A migrations directory `name` in `tmp` holding the workspace's migrations plus `extra`
/// (file name, SQL) files.
pub fn migrations_dir(tmp: &TempDir, name: &str, extra: &[(&str, &str)]) -> PathBuf {
    let dir = tmp.join(name);
    std::fs::create_dir_all(&dir).expect("the temp dir is writable");
    for entry in std::fs::read_dir(workspace_migrations()).expect("migrations/ exists") {
        let entry = entry.expect("migrations/ is readable");
        std::fs::copy(entry.path(), dir.join(entry.file_name())).expect("copy migration");
    }
    for (file, sql) in extra {
        std::fs::write(dir.join(file), sql).expect("write migration");
    }
    dir
}

/// Everything a database holds, as text: each schema object's SQL and each table's rows,
/// in a stable order. Two databases with equal dumps have the same content.
pub fn dump(path: &Path) -> String {
    let conn = Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .expect("the database opens read-only");
    let mut out = String::new();
    let mut schema = conn
        .prepare("SELECT type, name, sql FROM sqlite_master ORDER BY type, name")
        .expect("schema query");
    let objects: Vec<(String, String, Option<String>)> = schema
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
        .expect("schema rows")
        .collect::<Result<_, _>>()
        .expect("schema rows read");
    for (kind, name, sql) in &objects {
        out.push_str(&format!(
            "{kind} {name}: {}\n",
            sql.as_deref().unwrap_or("-")
        ));
    }
    for (kind, name, _) in &objects {
        if kind != "table" {
            continue;
        }
        let mut rows = conn
            .prepare(&format!("SELECT * FROM \"{name}\" ORDER BY rowid"))
            .expect("rows query");
        let n_columns = rows.column_count();
        let rows: Vec<String> = rows
            .query_map([], |row| {
                let values: Vec<String> = (0..n_columns)
                    .map(|i| {
                        row.get::<_, rusqlite::types::Value>(i)
                            .map(|v| format!("{v:?}"))
                    })
                    .collect::<Result<_, _>>()?;
                Ok(values.join(" | "))
            })
            .expect("rows")
            .collect::<Result<_, _>>()
            .expect("rows read");
        for row in rows {
            out.push_str(&format!("{name}: {row}\n"));
        }
    }
    out
}

/// Runs `sql` on its own connection (a stand-in for the app using the database).
pub fn execute(path: &Path, sql: &str) {
    let conn = Connection::open(path).expect("the database opens");
    conn.execute_batch(sql).expect("the statements run");
}

/// `text` with `dir` (the test's temp dir) replaced by `[TMP]`, backup timestamps by
/// `[TIME]` and every `pid <n>` by `pid [PID]`.
pub fn redact(text: &str, dir: &Path) -> String {
    let mut text = text.replace(&dir.display().to_string(), "[TMP]");
    // 20261125T030201.000000Z
    let bytes: Vec<char> = text.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < bytes.len() {
        let candidate: String = bytes[i..bytes.len().min(i + 23)].iter().collect();
        if candidate.len() == 23
            && candidate.char_indices().all(|(j, c)| match j {
                8 => c == 'T',
                15 => c == '.',
                22 => c == 'Z',
                _ => c.is_ascii_digit(),
            })
        {
            out.push_str("[TIME]");
            i += 23;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    text = out;
    let mut out = String::new();
    let mut rest = text.as_str();
    while let Some(at) = rest.find("pid ") {
        out.push_str(&rest[..at + 4]);
        rest = &rest[at + 4..];
        let digits = rest.chars().take_while(char::is_ascii_digit).count();
        if digits > 0 {
            out.push_str("[PID]");
            rest = &rest[digits..];
        }
    }
    out.push_str(rest);
    out
}

/// A python3 child holding `BEGIN EXCLUSIVE` on a database until dropped; the guard kills
/// and reaps it even if the test panics.
pub struct LockHolder {
    child: Child,
    stdin: Option<ChildStdin>,
}

impl LockHolder {
    /// Starts the child and returns once it reports that it holds the lock.
    pub fn start(path: &Path) -> Self {
        let mut child = Command::new("python3")
            .arg("-c")
            .arg(
                "import sqlite3,sys\n\
                 c=sqlite3.connect(sys.argv[1], isolation_level=None)\n\
                 c.execute('BEGIN EXCLUSIVE')\n\
                 print('locked', flush=True)\n\
                 sys.stdin.read()",
            )
            .arg(path)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 starts");
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("stdout is piped");
        let mut holder = Self { child, stdin };
        // Reading the line on a thread lets the wait have a deadline.
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| String::from("(nothing within 30s)"));
        if line.trim() != "locked" {
            let _ = holder.child.kill();
            panic!("expected the python child to print \"locked\"; it printed {line:?}");
        }
        holder
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for LockHolder {
    fn drop(&mut self) {
        if let Some(mut stdin) = self.stdin.take() {
            let _ = stdin.flush();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
