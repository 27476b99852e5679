//! End-to-end test of conductor over programs that are not ours (SPEC §2 health kinds, §4
//! lifecycle): an off-the-shelf HTTP server whose health path is `/`, a Node service that forks
//! a child, a raw TCP service, and a program that always crashes. Nothing here relies on
//! fake-service: no database check, no `/health`, no knobs.

// `pub` so that helpers this file does not use are not dead code.
pub mod support;

use conductor_protocol::ServiceState;
use serde_json::{Value, json};
use support::{
    Conductor, TempDir, free_ports, is_gone, read_pid_file, registry_head, toml_path, wait_all_gone,
};

/// A Node HTTP service that forks `sleep 1000` (and writes the child's pid to CHILD_PID_FILE),
/// answering every request with 200.
const NODE_SERVICE: &str = r#"
const http = require('http');
const fs = require('fs');
const { spawn } = require('child_process');
const child = spawn('sleep', ['1000'], { stdio: 'ignore' });
fs.writeFileSync(process.env.CHILD_PID_FILE + '.tmp', String(child.pid));
fs.renameSync(process.env.CHILD_PID_FILE + '.tmp', process.env.CHILD_PID_FILE);
http.createServer((req, res) => {
  res.writeHead(200, { 'content-type': 'text/plain' });
  res.end('up');
}).listen(Number(process.env.PORT), '127.0.0.1', () => console.log('node service listening'));
"#;

/// A raw TCP service: accepts and closes connections on $PORT, speaks no HTTP at all.
const TCP_SERVICE: &str = r#"
import os, socket
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(os.environ["PORT"])))
s.listen()
print("tcp service listening", flush=True)
while True:
    connection, _ = s.accept()
    connection.close()
"#;

#[test]
fn foreign_programs_run_fork_and_crash_under_conductor() {
    let dir = TempDir::new("foreign");
    let [web, node, tcp, crasher] = free_ports();
    let node_script = dir.write("node-service.js", NODE_SERVICE);
    let tcp_script = dir.write("tcp-service.py", TCP_SERVICE);
    let node_child_file = dir.join("node-child.pid");
    let registry = format!(
        r#"{head}
[services.web]
port = {web}
command = "python3"
args = ["-m", "http.server", "{web}", "--bind", "127.0.0.1"]
cwd = {dir}
health = {{ kind = "http", path = "/" }}

[services.node]
port = {node}
command = "node"
args = [{node_script}]
env = {{ CHILD_PID_FILE = {node_child_file} }}
health = {{ kind = "http", path = "/" }}

[services.tcp]
port = {tcp}
command = "python3"
args = [{tcp_script}]
health = {{ kind = "tcp" }}

[services.crasher]
port = {crasher}
command = "sh"
args = ["-c", "echo going down >&2; exit 3"]
critical = false
restart = {{ max_retries = 2, backoff = "10ms" }}
"#,
        head = registry_head("ForeignTest"),
        dir = toml_path(dir.path()),
        node_script = toml_path(&node_script),
        node_child_file = toml_path(&node_child_file),
        tcp_script = toml_path(&tcp_script),
    );
    let mut conductor = Conductor::start(&dir, &registry);
    let stdout = conductor.stdout();
    for line in [
        format!("✓ Starting Web Service... OK (port {web})"),
        format!("✓ Starting Node Service... OK (port {node})"),
        format!("✓ Starting Tcp Service... OK (port {tcp})"),
        format!("✗ Starting Crasher Service... FAILED (port {crasher})"),
        "! Running degraded without: crasher".to_owned(),
    ] {
        assert!(
            stdout.contains(&line),
            "no {line:?} in:\n{}",
            conductor.output()
        );
    }

    let node_child = read_pid_file(&node_child_file);
    assert!(
        !is_gone(node_child),
        "the node service's child should be running"
    );
    conductor.track(node_child);
    let mut fleet = vec![node_child];
    for status in conductor.statuses() {
        match status.name.as_str() {
            "crasher" => {
                assert_eq!(status.status, ServiceState::Failed, "{status:?}");
                assert_eq!(status.restarts, 2, "{status:?}");
                assert_eq!(status.pid, None, "{status:?}");
                assert!(status.last_error.is_some(), "{status:?}");
            }
            _ => {
                assert_eq!(status.status, ServiceState::Running, "{status:?}");
                fleet.extend(status.pid);
            }
        }
    }
    assert_eq!(fleet.len(), 4, "three running services and the node child");

    let health: Value = conductor.call_ok("app:health", "");
    assert_eq!(
        health,
        json!({"status": "degraded", "failing": ["crasher"]})
    );

    // The crasher's stderr was captured like any service's.
    let logs: Value = conductor.call_ok("logs:get", r#"{"serviceName":"crasher"}"#);
    assert!(
        logs["logs"]
            .as_array()
            .is_some_and(|logs| logs.iter().any(|e| e["message"] == json!("going down"))),
        "crasher's stderr is not in logs:get: {logs}"
    );

    let quit = conductor.call("app:quit", "");
    assert_eq!(quit.status, 202, "{}", quit.body);
    let status = conductor.wait_exit();
    assert_eq!(status.code(), Some(0), "{}", conductor.output());
    wait_all_gone(
        &fleet,
        "every foreign service and the node service's forked child to be gone",
    );
}
