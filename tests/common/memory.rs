//! Memory after a burst of streams (issue item 8): the example gateway's *binary* started as a
//! child process (a global allocator is chosen per binary, so only the real binary shows what a
//! user gets), its resident set read from `/proc/PID/status`, and a burst of concurrent streamed
//! chat completions sent to it. Shared by `tests/gateway/memory.rs` and `examples/burst.rs` (the
//! 6,000-stream report of BENCHMARKS.md, "Memory after a burst"), which includes this file.
//!
//! Linux only: the resident set comes from procfs.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;

/// The key the spawned gateway accepts.
pub const BURST_KEY: &str = "burst-key";

/// The example gateway's binary beside this test's build (see [`gateway_binary_beside`]); panics
/// with what to do if it is not built.
pub fn example_gateway() -> PathBuf {
    let binary = gateway_binary_beside(&std::env::current_exe().expect("the test's executable"));
    assert!(
        binary.is_file(),
        "{} is missing: `cargo test` builds it with the tests; else `cargo build --example gateway`",
        binary.display()
    );
    binary
}

/// The example gateway's binary beside `exe`'s build: `target/PROFILE/examples/gateway` from a
/// test (`target/PROFILE/deps/TEST-HASH`) or from another example (`target/PROFILE/examples/X`).
pub fn gateway_binary_beside(exe: &Path) -> PathBuf {
    let dir = exe.parent().expect("the executable's directory");
    let profile = if dir.ends_with("deps") || dir.ends_with("examples") {
        dir.parent().expect("the profile's directory")
    } else {
        dir
    };
    profile
        .join("examples")
        .join(format!("gateway{}", std::env::consts::EXE_SUFFIX))
}

/// Resident set size of process `pid`, in KiB (`VmRSS` of `/proc/PID/status`).
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The example gateway's binary running as a child process on a loopback port, killed on drop.
pub struct Spawned {
    pub child: Child,
    pub addr: SocketAddr,
}

impl Spawned {
    /// Starts `binary` on a free port of 127.0.0.1, accepting [`BURST_KEY`], with `args` besides
    /// (the mock's timing...), and waits (up to `wait`) until it accepts connections.
    pub fn start(binary: &Path, args: &[String], wait: Duration) -> Result<Spawned, String> {
        Self::start_within(binary, args, wait, None)
    }

    /// [`start`](Self::start), allowed at most `open_files` descriptors if given (`ulimit -n`
    /// through `sh`: the soft and the hard limit, so that the gateway cannot raise it).
    pub fn start_within(
        binary: &Path,
        args: &[String],
        wait: Duration,
        open_files: Option<u64>,
    ) -> Result<Spawned, String> {
        let launch = Launch {
            args: args.to_vec(),
            open_files,
            ..Launch::default()
        };
        Self::launch(binary, launch, wait)
    }

    /// [`start`](Self::start) with everything [`Launch`] says: arguments, variables of the
    /// child's environment, a descriptor limit, where its stderr goes.
    pub fn launch(binary: &Path, launch: Launch, wait: Duration) -> Result<Spawned, String> {
        // A port the kernel just gave out and took back: free unless another process takes it
        // in the next instant.
        let addr = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("no free port: {e}"))?;
        let mut command = match launch.open_files {
            Some(limit) => {
                let mut sh = Command::new("sh");
                sh.arg("-c")
                    .arg(format!("ulimit -n {limit} && exec \"$0\" \"$@\""))
                    .arg(binary);
                sh
            }
            None => Command::new(binary),
        };
        let stderr = match launch.stderr {
            Some(file) => Stdio::from(file),
            None => Stdio::inherit(),
        };
        let child = command
            .args(["--listen", &addr.to_string(), "--api-key", BURST_KEY])
            .args(&launch.args)
            .envs(launch.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", binary.display()))?;
        let mut spawned = Spawned { child, addr };
        let deadline = Instant::now() + wait;
        while TcpStream::connect(addr).is_err() {
            if let Ok(Some(status)) = spawned.child.try_wait() {
                return Err(format!("{} exited at start: {status}", binary.display()));
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "{} not listening on {addr} after {wait:?}",
                    binary.display()
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(spawned)
    }

    /// Stops the gateway as Ctrl-C does (SIGINT, through `kill`: it finishes its requests and
    /// sends its last OTLP export) and waits up to `wait` for it to exit: its exit status.
    pub fn interrupt(&mut self, wait: Duration) -> Result<std::process::ExitStatus, String> {
        let sent = Command::new("kill")
            .args(["-INT", &self.pid().to_string()])
            .status()
            .map_err(|e| format!("cannot run kill: {e}"))?;
        if !sent.success() {
            return Err(format!("kill -INT {} failed: {sent}", self.pid()));
        }
        let deadline = Instant::now() + wait;
        loop {
            if let Some(status) = self.child.try_wait().map_err(|e| e.to_string())? {
                return Ok(status);
            }
            if Instant::now() > deadline {
                return Err(format!("still running {wait:?} after SIGINT"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The child's resident set, in KiB; panics if it is gone.
    pub fn rss_kib(&self) -> u64 {
        rss_kib(self.pid()).expect("the gateway's /proc/PID/status")
    }

    pub fn chat_url(&self) -> String {
        format!("http://{}/v1/chat/completions", self.addr)
    }

    /// `http://ADDR`, the gateway's base without `/v1`.
    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// How [`Spawned::launch`] starts the gateway, beyond its address and key.
#[derive(Debug, Default)]
pub struct Launch {
    /// Its arguments.
    pub args: Vec<String>,
    /// Variables set in its environment (besides this process' own).
    pub env: Vec<(String, String)>,
    /// At most this many open files (`ulimit -n`), if given.
    pub open_files: Option<u64>,
    /// Where its stderr goes; this process' stderr if `None`.
    pub stderr: Option<std::fs::File>,
}

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What a burst did: streams read to their end with a 200, the others, the most open at once,
/// the highest resident set seen while it ran (KiB) and how long it took.
#[derive(Debug, Clone, Copy)]
pub struct Burst {
    pub completed: usize,
    pub failed: usize,
    pub most_open: usize,
    pub peak_kib: u64,
    pub took: Duration,
}

/// Sends `streams` streamed chat completions to `url` all at once (each on a connection of its
/// own, closed after its answer, as that many clients would), reads every stream to its end,
/// and samples `pid`'s resident set every 20 ms meanwhile.
pub async fn burst(url: &str, streams: usize, pid: u32) -> Burst {
    let client = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(0)
        .build()
        .expect("a plain HTTP client builds");
    let body =
        r#"{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"Hi"}]}"#;
    let open = Arc::new(AtomicUsize::new(0));
    let most_open = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicU64::new(rss_kib(pid).unwrap_or(0)));
    let sampling = {
        let peak = peak.clone();
        tokio::spawn(async move {
            loop {
                if let Some(rss) = rss_kib(pid) {
                    peak.fetch_max(rss, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..streams {
        let request = client
            .post(url)
            .bearer_auth(BURST_KEY)
            .header("content-type", "application/json")
            .body(body)
            .timeout(Duration::from_secs(120));
        let (open, most_open) = (open.clone(), most_open.clone());
        tasks.spawn(async move {
            let response = request.send().await.ok().filter(|r| r.status() == 200)?;
            let now = open.fetch_add(1, Ordering::Relaxed) + 1;
            most_open.fetch_max(now, Ordering::Relaxed);
            let mut body = response.bytes_stream();
            let mut whole = true;
            while let Some(chunk) = body.next().await {
                whole &= chunk.is_ok();
            }
            open.fetch_sub(1, Ordering::Relaxed);
            whole.then_some(())
        });
    }
    let mut completed = 0;
    while let Some(done) = tasks.join_next().await {
        completed += usize::from(matches!(done, Ok(Some(()))));
    }
    let took = start.elapsed();
    drop(client);
    sampling.abort();
    Burst {
        completed,
        failed: streams - completed,
        most_open: most_open.load(Ordering::Relaxed),
        peak_kib: peak.load(Ordering::Relaxed),
        took,
    }
}

/// Warm-up traffic: `streams` streams, `at_once` at a time, then `settle` of quiet; what the
/// resident set is compared with after a burst is read after this.
pub async fn warm_up(url: &str, streams: usize, at_once: usize, pid: u32, settle: Duration) {
    for _ in 0..streams.div_ceil(at_once) {
        let done = burst(url, at_once, pid).await;
        assert_eq!(done.failed, 0, "warm-up streams failed: {done:?}");
    }
    tokio::time::sleep(settle).await;
}

/// The resident set (KiB) at each of `after` past `from`, sleeping in between.
pub async fn rss_after(pid: u32, from: Instant, after: &[Duration]) -> Vec<u64> {
    let mut seen = Vec::with_capacity(after.len());
    for &at in after {
        tokio::time::sleep_until((from + at).into()).await;
        seen.push(rss_kib(pid).expect("the gateway's /proc/PID/status"));
    }
    seen
}
