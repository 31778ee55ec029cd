//! A PostgreSQL server of a test's own (`scripts/pg-server.sh`): started on a temporary data
//! directory and a free loopback port, killed with SIGKILL and restarted by the crash test,
//! or run beside `SEATHOLD_PG_URL`'s as a second shard.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

/// A PostgreSQL server of the test's own, on a temporary data directory.
pub struct Server {
    pub dir: PathBuf,
    pub port: u16,
    settings: Vec<String>,
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/pg-server.sh")
}

fn run(cmd: &mut Command) {
    let out = cmd.output().expect("run pg-server.sh");
    assert!(out.status.success(), "{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
}

impl Server {
    pub fn new(settings: &[&str]) -> Self {
        let base = std::env::temp_dir().join(format!("seathold-crash-{}", uuid::Uuid::new_v4().simple()));
        let port = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port").local_addr().expect("addr").port();
        let s = Self { dir: base, port, settings: settings.iter().map(|s| (*s).to_owned()).collect() };
        run(Command::new(script()).arg("init").arg(&s.dir));
        s.start();
        s
    }

    pub fn start(&self) {
        run(Command::new(script()).arg("start").arg(&self.dir).arg(self.port.to_string()).args(&self.settings));
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

/// SIGKILL the postmaster of the server in `dir` and every backend at once; wait until none
/// runs. Returns how many processes were killed.
pub fn kill_server(dir: &std::path::Path) -> usize {
    {
        let Some(pm) = std::fs::read_to_string(dir.join("data/postmaster.pid"))
            .ok()
            .and_then(|pid| pid.lines().next().and_then(|l| l.trim().parse::<u32>().ok()))
        else {
            return 0;
        };
        let mut pids = vec![pm];
        pids.extend(children(pm));
        let _ = Command::new("kill").arg("-9").args(pids.iter().map(u32::to_string)).output();
        let deadline = Instant::now() + Duration::from_secs(30);
        while pids.iter().any(|p| running(*p)) {
            assert!(Instant::now() < deadline, "killed server processes would not die");
            std::thread::sleep(Duration::from_millis(20));
        }
        // The killed postmaster's pid file is stale, as after a machine crash; a killed
        // process may linger as an unreaped zombie here, which PostgreSQL would take for a
        // live postmaster, so remove the file (recovery needs only the data directory).
        let _ = std::fs::remove_file(dir.join("data/postmaster.pid"));
        if let Ok(entries) = std::fs::read_dir(dir) {
            for e in entries.flatten() {
                if e.file_name().to_string_lossy().starts_with(".s.PGSQL.") {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
        if std::env::var_os("SEATHOLD_CRASH_DEBUG").is_some() {
            eprintln!("killed postmaster {pm} and {} backends: {pids:?}", pids.len() - 1);
        }
        pids.len()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = Command::new(script()).arg("stop").arg(&self.dir).output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The processes whose parent is `pid`.
fn children(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else { return out };
    for e in entries.flatten() {
        let Some(child) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{child}/stat")) else { continue };
        // pid (comm) state ppid ...: comm may hold spaces, so read after the last ')'.
        let fields: Vec<&str> =
            stat.rsplit_once(')').map(|(_, rest)| rest.split_whitespace().collect()).unwrap_or_default();
        if fields.get(1).and_then(|p| p.parse::<u32>().ok()) == Some(pid) {
            out.push(child);
        }
    }
    out
}

/// Whether `pid` runs (a zombie does not).
fn running(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().next()) != Some("Z"),
        Err(_) => false,
    }
}
