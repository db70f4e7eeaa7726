//! The `partnerd` binary from the outside, as an operator runs it.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_partnerd");
const GOOD_PASSWORD: &str = "correct horse battery staple 42";

/// A command run from `dir`, with none of the caller's `PARTNERD_*` settings.
fn partnerd(dir: &Path) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.current_dir(dir).stdin(Stdio::null());
    for (key, _) in std::env::vars() {
        if key.starts_with("PARTNERD_") {
            cmd.env_remove(key);
        }
    }
    cmd.env("PARTNERD_LOG", "warn");
    cmd
}

fn run(dir: &Path, args: &[&str]) -> Output {
    partnerd(dir).args(args).output().expect("runs partnerd")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn data_dir(dir: &tempfile::TempDir) -> String {
    dir.path().join("data").to_str().unwrap().to_owned()
}

fn create_admin(dir: &Path, data: &str, email: &str) -> Output {
    partnerd(dir)
        .env("PARTNERD_ADMIN_PASSWORD", GOOD_PASSWORD)
        .args([
            "admin",
            "create",
            "--email",
            email,
            "--role",
            "admin",
            "--data-dir",
            data,
        ])
        .output()
        .unwrap()
}

#[test]
fn help_lists_every_command() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(dir.path(), &["--help"]);
    assert!(out.status.success());
    let help = stdout(&out);
    for command in [
        "serve", "demo", "migrate", "admin", "api-key", "backup", "restore",
    ] {
        assert!(
            help.lines().any(|l| l.trim_start().starts_with(command)),
            "--help lacks {command}:\n{help}"
        );
    }
    for command in ["serve", "demo", "migrate", "backup", "restore"] {
        let out = run(dir.path(), &[command, "--help"]);
        assert!(out.status.success(), "{command} --help");
        let text = stdout(&out);
        assert!(
            text.contains("Examples:") && text.contains("--data-dir"),
            "{command} --help:\n{text}"
        );
    }
    for command in [["admin", "create"], ["api-key", "create"]] {
        let out = run(dir.path(), &[command[0], command[1], "--help"]);
        assert!(stdout(&out).contains("Examples:"), "{command:?} --help");
    }
}

#[test]
fn migrate_creates_the_data_directory_and_database() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("nested").join("data");
    let out = run(
        dir.path(),
        &["migrate", "--data-dir", data.to_str().unwrap()],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(data.join("partnerd.db").is_file());
    assert!(
        stdout(&out).contains("Schema versions: 1"),
        "{}",
        stdout(&out)
    );
    let again = run(
        dir.path(),
        &["migrate", "--data-dir", data.to_str().unwrap()],
    );
    assert!(
        stdout(&again).contains("Already up to date"),
        "{}",
        stdout(&again)
    );
}

#[test]
fn the_default_data_directory_and_the_environment_are_honoured() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(dir.path(), &["migrate"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(dir.path().join("partnerd-data/partnerd.db").is_file());

    let out = partnerd(dir.path())
        .env("PARTNERD_DATA_DIR", "from-env")
        .arg("migrate")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(dir.path().join("from-env/partnerd.db").is_file());

    let url = format!("sqlite://{}", dir.path().join("by-url/x.db").display());
    let out = run(dir.path(), &["migrate", "--database-url", &url]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(dir.path().join("by-url/x.db").is_file());
}

#[test]
fn admin_create_takes_the_password_from_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let data = data_dir(&dir);
    let out = create_admin(dir.path(), &data, "ann@acme.test");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("ann@acme.test"), "{}", stdout(&out));

    let taken = create_admin(dir.path(), &data, "ann@acme.test");
    assert_eq!(taken.status.code(), Some(2));
    assert!(stderr(&taken).contains("email"), "{}", stderr(&taken));

    let manager = partnerd(dir.path())
        .env("PARTNERD_ADMIN_PASSWORD", GOOD_PASSWORD)
        .args([
            "admin",
            "create",
            "--email",
            "bo@acme.test",
            "--role",
            "manager",
            "--name",
            "Bo Lind",
            "--data-dir",
            &data,
        ])
        .output()
        .unwrap();
    assert!(manager.status.success(), "{}", stderr(&manager));
    assert!(stdout(&manager).contains("Bo Lind"), "{}", stdout(&manager));
}

#[test]
fn a_weak_password_is_refused_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let data = data_dir(&dir);
    let out = partnerd(dir.path())
        .env("PARTNERD_ADMIN_PASSWORD", "password1")
        .args([
            "admin",
            "create",
            "--email",
            "ann@acme.test",
            "--role",
            "admin",
            "--data-dir",
            &data,
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("password:"), "{err}");
    assert!(err.contains("error"), "{err}");
    // Nothing was created: the same email works with a good password.
    assert!(
        create_admin(dir.path(), &data, "ann@acme.test")
            .status
            .success()
    );
}

#[test]
fn admin_create_without_a_password_or_a_terminal_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let data = data_dir(&dir);
    let out = run(
        dir.path(),
        &[
            "admin",
            "create",
            "--email",
            "ann@acme.test",
            "--role",
            "admin",
            "--data-dir",
            &data,
        ],
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("PARTNERD_ADMIN_PASSWORD"),
        "{}",
        stderr(&out)
    );
    let bad_role = run(
        dir.path(),
        &[
            "admin",
            "create",
            "--email",
            "ann@acme.test",
            "--role",
            "owner",
        ],
    );
    assert!(!bad_role.status.success());
    assert!(stderr(&bad_role).contains("admin"), "{}", stderr(&bad_role));
}

#[test]
fn api_key_create_prints_the_key_alone_on_the_last_line() {
    let dir = tempfile::tempdir().unwrap();
    let data = data_dir(&dir);
    let out = run(
        dir.path(),
        &[
            "api-key",
            "create",
            "--name",
            "billing",
            "--data-dir",
            &data,
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let last = text.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("pdk_") && last.len() > 20 && !last.contains(' '),
        "last line: {last:?}"
    );
    assert!(stderr(&out).contains("Bearer"), "{}", stderr(&out));

    let empty = run(
        dir.path(),
        &["api-key", "create", "--name", " ", "--data-dir", &data],
    );
    assert_eq!(empty.status.code(), Some(2));
    assert!(stderr(&empty).contains("name:"), "{}", stderr(&empty));
}

#[test]
fn backup_then_restore_brings_the_data_back() {
    let dir = tempfile::tempdir().unwrap();
    let data = data_dir(&dir);
    assert!(
        create_admin(dir.path(), &data, "first@acme.test")
            .status
            .success()
    );
    let backup = dir.path().join("backup.db");
    let out = run(
        dir.path(),
        &[
            "backup",
            "--to",
            backup.to_str().unwrap(),
            "--data-dir",
            &data,
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(backup.is_file());
    assert!(
        stdout(&out).contains("integrity check ok"),
        "{}",
        stdout(&out)
    );
    let backup_bytes = std::fs::read(&backup).unwrap();

    assert!(
        create_admin(dir.path(), &data, "second@acme.test")
            .status
            .success()
    );

    let out = run(
        dir.path(),
        &[
            "restore",
            "--from",
            backup.to_str().unwrap(),
            "--data-dir",
            &data,
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("1 staff"), "{}", stdout(&out));
    assert!(stderr(&out).contains("Stop"), "{}", stderr(&out));
    // The backup file itself is left as it was.
    assert_eq!(std::fs::read(&backup).unwrap(), backup_bytes);
    // The previous database is kept aside.
    let kept: Vec<PathBuf> = std::fs::read_dir(&data)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with("partnerd.db.before-restore-")
        })
        .collect();
    assert!(
        !kept.is_empty(),
        "no partnerd.db.before-restore-* in {data}"
    );

    // The first admin is back, the second is gone.
    assert_eq!(
        create_admin(dir.path(), &data, "first@acme.test")
            .status
            .code(),
        Some(2)
    );
    let again = create_admin(dir.path(), &data, "second@acme.test");
    assert!(
        again.status.success(),
        "the second admin survived the restore: {}",
        stderr(&again)
    );
}

#[test]
fn backup_never_overwrites_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let data = data_dir(&dir);
    assert!(
        run(dir.path(), &["migrate", "--data-dir", &data])
            .status
            .success()
    );
    let target = dir.path().join("exists.db");
    std::fs::write(&target, b"keep me").unwrap();
    let out = run(
        dir.path(),
        &[
            "backup",
            "--to",
            target.to_str().unwrap(),
            "--data-dir",
            &data,
        ],
    );
    assert!(!out.status.success());
    assert!(stderr(&out).contains("already exists"), "{}", stderr(&out));
    assert_eq!(std::fs::read(&target).unwrap(), b"keep me");
}

#[test]
fn backup_without_a_database_fails_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let data = data_dir(&dir);
    let target = dir.path().join("b.db");
    let out = run(
        dir.path(),
        &[
            "backup",
            "--to",
            target.to_str().unwrap(),
            "--data-dir",
            &data,
        ],
    );
    assert!(!out.status.success());
    assert!(stderr(&out).contains("no database"), "{}", stderr(&out));
    assert!(!target.exists());
}

#[test]
fn restore_refuses_what_is_not_a_backup_and_keeps_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let data = data_dir(&dir);
    assert!(
        create_admin(dir.path(), &data, "first@acme.test")
            .status
            .success()
    );
    let junk = dir.path().join("junk.db");
    std::fs::write(&junk, vec![b'x'; 8192]).unwrap();
    let out = run(
        dir.path(),
        &[
            "restore",
            "--from",
            junk.to_str().unwrap(),
            "--data-dir",
            &data,
        ],
    );
    assert!(!out.status.success());
    assert!(stderr(&out).contains("junk.db"), "{}", stderr(&out));
    let missing = run(
        dir.path(),
        &[
            "restore",
            "--from",
            "/nonexistent/b.db",
            "--data-dir",
            &data,
        ],
    );
    assert!(!missing.status.success());
    // The database is untouched, and no staging file is left behind.
    assert_eq!(
        create_admin(dir.path(), &data, "first@acme.test")
            .status
            .code(),
        Some(2)
    );
    let names: Vec<String> = std::fs::read_dir(&data)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        names
            .iter()
            .all(|n| !n.contains("restoring") && !n.contains("before-restore")),
        "{names:?}"
    );
}

#[test]
fn postgres_backups_point_to_pg_dump() {
    let dir = tempfile::tempdir().unwrap();
    let url = "postgres://partnerd:secret-pw@127.0.0.1:1/partnerd";
    let out = run(
        dir.path(),
        &["backup", "--to", "b.dump", "--database-url", url],
    );
    assert!(!out.status.success());
    assert!(stderr(&out).contains("pg_dump"), "{}", stderr(&out));
    let out = run(
        dir.path(),
        &["restore", "--from", "b.dump", "--database-url", url],
    );
    assert!(!out.status.success());
    assert!(stderr(&out).contains("pg_restore"), "{}", stderr(&out));
}

#[test]
fn a_bad_database_url_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(
        dir.path(),
        &["migrate", "--database-url", "mysql://localhost/partnerd"],
    );
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.starts_with("error: cannot open the database"), "{err}");
    assert!(
        err.contains("sqlite://") && err.contains("postgres://"),
        "{err}"
    );

    let out = run(
        dir.path(),
        &[
            "migrate",
            "--database-url",
            "postgres://partnerd:hunter2-secret@127.0.0.1:notaport/partnerd",
        ],
    );
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("cannot open the database"), "{err}");
    assert!(
        !err.contains("hunter2-secret"),
        "the password leaked: {err}"
    );
}

/// A running server or demo; killed if a test fails before stopping it.
struct Server {
    child: Child,
    lines: mpsc::Receiver<String>,
    stdout: Option<std::thread::JoinHandle<String>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    fn start(dir: &Path, args: &[&str]) -> Self {
        let mut child = partnerd(dir)
            .env("PARTNERD_LOG", "info")
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, lines) = mpsc::channel();
        let err = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let mut out = child.stdout.take().unwrap();
        let stdout = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = out.read_to_string(&mut text);
            text
        });
        Self {
            child,
            lines,
            stdout: Some(stdout),
        }
    }

    /// `partnerd serve` on a free loopback port, and its address once it listens.
    fn serve(dir: &Path, data: &str) -> (Self, String) {
        let server = Self::start(
            dir,
            &["serve", "--listen", "127.0.0.1:0", "--data-dir", data],
        );
        let address = server.address(Duration::from_secs(30));
        (server, address)
    }

    /// The address from the `listening on http://…` log line.
    fn address(&self, within: Duration) -> String {
        let deadline = Instant::now() + within;
        let mut seen = Vec::new();
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    if let Some(rest) = line.split("listening on http://").nth(1) {
                        return rest.trim().to_owned();
                    }
                    seen.push(line);
                }
                Err(_) => break,
            }
        }
        panic!(
            "no `listening on` line within {within:?}:\n{}",
            seen.join("\n")
        );
    }

    /// Stops with SIGTERM; returns whether it exited successfully, and its standard output.
    fn terminate(mut self) -> (bool, String) {
        let pid = self.child.id().to_string();
        assert!(
            Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        );
        let deadline = Instant::now() + Duration::from_secs(20);
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "partnerd did not stop on SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        let out = self.stdout.take().unwrap().join().unwrap();
        (status.success(), out)
    }
}

/// A plain HTTP/1.1 GET; returns the status line.
fn http_get(address: &str, path: &str) -> String {
    let mut stream = TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    response.lines().next().unwrap_or_default().to_owned()
}

#[test]
fn serve_answers_http_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let data = data_dir(&dir);
    let (server, address) = Server::serve(dir.path(), &data);
    let status = http_get(&address, "/healthz");
    assert!(status.starts_with("HTTP/1.1 "), "{status:?}");
    // A key created beside the running server.
    let out = run(
        dir.path(),
        &["api-key", "create", "--name", "live", "--data-dir", &data],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let (ok, _) = server.terminate();
    assert!(ok, "serve did not exit cleanly on SIGTERM");
}

/// A browser keeps its connection open after a page; stopping must not wait the
/// whole grace period for it. The open connection is closed, not left hanging.
#[test]
fn serve_closes_idle_keep_alive_connections_when_it_stops() {
    let dir = tempfile::tempdir().unwrap();
    let data = data_dir(&dir);
    let (server, address) = Server::serve(dir.path(), &data);
    let mut stream = TcpStream::connect(&address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    // Two requests on one connection: it is kept alive between them.
    for _ in 0..2 {
        write!(stream, "GET /healthz HTTP/1.1\r\nHost: {address}\r\n\r\n").unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            assert_eq!(stream.read(&mut byte).unwrap(), 1, "the connection closed");
            head.push(byte[0]);
        }
        let head = String::from_utf8(head).unwrap().to_ascii_lowercase();
        assert!(head.starts_with("http/1.1 200"), "{head}");
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .map(|v| v.trim().parse().unwrap())
            .expect("a content-length");
        let mut body = vec![0u8; length];
        stream.read_exact(&mut body).unwrap();
    }
    let stopping = Instant::now();
    let (ok, _) = server.terminate();
    assert!(ok, "serve did not exit cleanly on SIGTERM");
    assert!(
        stopping.elapsed() < Duration::from_secs(10),
        "an idle connection held the stop for {:?}",
        stopping.elapsed()
    );
    let mut rest = Vec::new();
    assert_eq!(stream.read_to_end(&mut rest).unwrap(), 0, "{rest:?}");
}

#[test]
fn demo_fills_a_program_and_serves_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = data_dir(&dir);
    let started = Instant::now();
    let server = Server::start(
        dir.path(),
        &["demo", "--listen", "127.0.0.1:0", "--data-dir", &data],
    );
    let address = server.address(Duration::from_secs(60));
    assert!(http_get(&address, "/").starts_with("HTTP/1.1 "));
    assert!(started.elapsed() < Duration::from_secs(60));
    let (ok, out) = server.terminate();
    assert!(ok);
    for login in [
        "admin@demo.partnerd.test",
        "partner@demo.partnerd.test",
        "/admin/login",
        "/login",
        "demo-password-2026",
    ] {
        assert!(
            out.contains(login),
            "the demo does not print {login}:\n{out}"
        );
    }

    // The data is there: back it up and look at the restore summary elsewhere.
    let backup = dir.path().join("demo.db");
    assert!(
        run(
            dir.path(),
            &[
                "backup",
                "--to",
                backup.to_str().unwrap(),
                "--data-dir",
                &data
            ]
        )
        .status
        .success()
    );
    let other = dir.path().join("other").to_str().unwrap().to_owned();
    let out = run(
        dir.path(),
        &[
            "restore",
            "--from",
            backup.to_str().unwrap(),
            "--data-dir",
            &other,
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let summary = stdout(&out);
    assert!(
        summary.contains("46 partners (45 active), 4 staff"),
        "{summary}"
    );

    // Run again on the same directory: the demo is served as it is.
    let again = Server::start(
        dir.path(),
        &["demo", "--listen", "127.0.0.1:0", "--data-dir", &data],
    );
    let address = again.address(Duration::from_secs(60));
    assert!(http_get(&address, "/").starts_with("HTTP/1.1 "));
    assert!(again.terminate().0);
}

#[test]
fn demo_refuses_a_database_that_is_not_the_demo() {
    let dir = tempfile::tempdir().unwrap();
    let data = data_dir(&dir);
    assert!(
        create_admin(dir.path(), &data, "real@acme.test")
            .status
            .success()
    );
    let out = run(
        dir.path(),
        &["demo", "--listen", "127.0.0.1:0", "--data-dir", &data],
    );
    assert!(!out.status.success());
    assert!(stderr(&out).contains("not the demo"), "{}", stderr(&out));
}

#[test]
fn demo_uses_its_own_directory_by_default_and_starts_fresh() {
    let dir = tempfile::tempdir().unwrap();
    for _ in 0..2 {
        let server = Server::start(dir.path(), &["demo", "--listen", "127.0.0.1:0"]);
        let address = server.address(Duration::from_secs(60));
        assert!(http_get(&address, "/").starts_with("HTTP/1.1 "));
        assert!(server.terminate().0);
    }
    assert!(dir.path().join("partnerd-demo/partnerd.db").is_file());
    assert!(!dir.path().join("partnerd-data").exists());
}
