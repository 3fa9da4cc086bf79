//! Helpers shared by the integration tests: real nats-server processes on
//! loopback ports (one node, or a cluster of three), logs written with
//! eventfold, the stream read back, a seeded random generator, and the
//! crate's binary.
#![allow(dead_code)] // each test file uses some of them

use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer::DeliverPolicy, consumer::pull::OrderedConfig};
use eventfold::{Event, EventLog, EventReader};
use futures_util::StreamExt;
use serde_json::json;

/// The nats-server binary: `$NATS_SERVER`, or `nats-server` on the path
/// (test.sh installs it when missing).
pub fn server_binary() -> PathBuf {
    std::env::var_os("NATS_SERVER").map_or_else(|| PathBuf::from("nats-server"), PathBuf::from)
}

/// The crate's command-line binary.
pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_eventfold-nats")
}

/// A port on loopback that nothing listens on now.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a free port on loopback");
    listener.local_addr().expect("a bound address").port()
}

/// One nats-server process with its configuration and its storage, on
/// loopback; killed when dropped (also when a test fails).
pub struct Server {
    pub name: String,
    pub port: u16,
    config: PathBuf,
    child: Option<Child>,
    /// The configuration and JetStream's storage directory.
    _dir: tempfile::TempDir,
}

impl Server {
    /// A single server with JetStream on file storage, syncing every
    /// message to disk before acknowledging it.
    pub fn single() -> Server {
        let port = free_port();
        Server::spawn("single", port, "")
    }

    fn spawn(name: &str, port: u16, extra: &str) -> Server {
        let dir = tempfile::tempdir().expect("a storage directory");
        let store = dir.path().join("jetstream");
        let config = dir.path().join("server.conf");
        let text = format!(
            "server_name: {name}\nlisten: 127.0.0.1:{port}\n\
             jetstream {{\n  store_dir: {store:?}\n  sync_interval: always\n}}\n{extra}"
        );
        std::fs::write(&config, text).expect("the server's configuration");
        let mut server = Server {
            name: name.to_owned(),
            port,
            config,
            child: None,
            _dir: dir,
        };
        server.start();
        server
    }

    /// The client URL.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Starts the process (again, after [`kill`](Self::kill)), on the same
    /// port and storage, and waits until it accepts connections.
    pub fn start(&mut self) {
        assert!(self.child.is_none(), "{} is already running", self.name);
        let child = Command::new(server_binary())
            .arg("-c")
            .arg(&self.config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start {:?} ({e}): install it (eventfold-nats/test.sh does) or set \
                     NATS_SERVER",
                    server_binary()
                )
            });
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "{} did not start listening",
                self.name
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the process with SIGKILL (what it synced survives).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Three servers clustered on loopback, each with its own storage.
pub struct Cluster {
    pub nodes: Vec<Server>,
}

impl Cluster {
    pub fn start() -> Cluster {
        let ports: Vec<(u16, u16)> = (0..3).map(|_| (free_port(), free_port())).collect();
        let routes: Vec<String> = ports
            .iter()
            .map(|(_, route)| format!("\"nats-route://127.0.0.1:{route}\""))
            .collect();
        let nodes = ports
            .iter()
            .enumerate()
            .map(|(i, (port, route))| {
                let extra = format!(
                    "cluster {{\n  name: efcluster\n  listen: 127.0.0.1:{route}\n  routes: [{}]\n}}\n",
                    routes.join(", ")
                );
                Server::spawn(&format!("n{i}"), *port, &extra)
            })
            .collect();
        Cluster { nodes }
    }

    /// Every node's URL, separated by commas.
    pub fn urls(&self) -> String {
        let urls: Vec<String> = self.nodes.iter().map(Server::url).collect();
        urls.join(",")
    }
}

/// A small deterministic generator (xorshift64*), seeded.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    /// A seed from `$EVENTFOLD_NATS_SEED`, or the clock; printed.
    pub fn seeded(what: &str) -> Rng {
        let seed = std::env::var("EVENTFOLD_NATS_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(1, |d| d.as_nanos() as u64)
            });
        eprintln!("{what}: seed {seed} (EVENTFOLD_NATS_SEED={seed} repeats it)");
        Rng::new(seed)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `lo..hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo).max(1)
    }
}

/// Event `i` of the tests' histories: deposits and withdrawals of a few
/// accounts, with text that needs escaping now and then.
pub fn event(i: u64) -> Event {
    let account = format!("acct-{}", i % 7);
    let event = if i % 5 == 4 {
        Event::with_ts(
            "withdrawn",
            json!({"account": account, "amount": i % 13}),
            1_764_000_000 + i,
        )
    } else {
        Event::with_ts(
            "deposited",
            json!({"account": account, "amount": i % 17, "note": format!("n°{i} \"q\"\n")}),
            1_764_000_000 + i,
        )
    };
    if i.is_multiple_of(3) {
        event.with_id(format!("e-{i}"))
    } else {
        event
    }
}

/// The tests' reducer: a balance per account.
pub fn balances(
    mut state: std::collections::BTreeMap<String, i64>,
    event: &Event,
) -> std::collections::BTreeMap<String, i64> {
    let account = event.data["account"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let amount = event.data["amount"].as_i64().unwrap_or(0);
    match event.event_type.as_str() {
        "deposited" => *state.entry(account).or_default() += amount,
        "withdrawn" => *state.entry(account).or_default() -= amount,
        _ => {}
    }
    state
}

/// The tests' second reducer: how many events of each type.
pub fn counts(
    mut state: std::collections::BTreeMap<String, u64>,
    event: &Event,
) -> std::collections::BTreeMap<String, u64> {
    *state.entry(event.event_type.clone()).or_default() += 1;
    state
}

/// Opens the log in `dir` with the tests' two views, rotating past
/// `max_log_size` bytes.
pub fn open_log(dir: &Path, max_log_size: u64) -> EventLog {
    EventLog::builder(dir)
        .max_log_size(max_log_size)
        .view("balances", balances)
        .view("counts", counts)
        .open()
        .expect("the log opens")
}

/// Appends events `from..to` in batches of `batch`.
pub fn append(log: &mut EventLog, from: u64, to: u64, batch: u64) {
    let mut i = from;
    while i < to {
        let end = (i + batch).min(to);
        let events: Vec<Event> = (i..end).map(event).collect();
        log.append_batch(&events).expect("the append succeeds");
        i = end;
    }
}

/// Every stored line of the log in `dir`.
pub fn log_lines(dir: &Path) -> Vec<String> {
    EventReader::open(dir)
        .expect("the directory opens")
        .read_from_seq(0)
        .expect("the history reads")
        .lines()
        .map(|item| item.expect("a line").1)
        .collect()
}

/// One message of the stream, as the tests check it.
#[derive(Debug, PartialEq, Eq)]
pub struct StreamLine {
    pub position: u64,
    pub seq: String,
    pub hash: String,
    pub payload: String,
}

/// Every message of `stream`, read with an ordered consumer.
pub async fn stream_lines(urls: &str, stream: &str) -> Vec<StreamLine> {
    let servers: Vec<&str> = urls.split(',').collect();
    let client = async_nats::connect(servers.as_slice())
        .await
        .expect("a connection");
    let js = jetstream::new(client);
    let mut stream = js.get_stream(stream).await.expect("the stream exists");
    let last = stream
        .info()
        .await
        .expect("stream info")
        .state
        .last_sequence;
    let mut out = Vec::new();
    if last == 0 {
        return out;
    }
    let consumer = stream
        .create_consumer(OrderedConfig {
            deliver_policy: DeliverPolicy::All,
            ..Default::default()
        })
        .await
        .expect("a consumer");
    let mut messages = consumer.messages().await.expect("messages");
    while (out.len() as u64) < last {
        let message = tokio::time::timeout(Duration::from_secs(30), messages.next())
            .await
            .expect("the next message within 30 s")
            .expect("the stream goes on")
            .expect("a message");
        let header = |name: &str| {
            message
                .headers
                .as_ref()
                .and_then(|h| h.get(name))
                .map(|v| v.as_str().to_owned())
                .unwrap_or_default()
        };
        out.push(StreamLine {
            position: message.info().expect("message info").stream_sequence,
            seq: header("Eventfold-Seq"),
            hash: header("Eventfold-Hash"),
            payload: String::from_utf8(message.payload.to_vec()).expect("UTF-8"),
        });
    }
    out
}

/// Asserts that the stream holds exactly the log's events, in order,
/// once each, with the right positions, sequence numbers and hashes.
pub async fn assert_stream_is_log(urls: &str, stream: &str, dir: &Path) {
    let lines = log_lines(dir);
    let messages = stream_lines(urls, stream).await;
    assert_eq!(
        messages.len(),
        lines.len(),
        "the stream and the log hold as many events"
    );
    for (i, (message, line)) in messages.iter().zip(&lines).enumerate() {
        let expected = StreamLine {
            position: i as u64 + 1,
            seq: i.to_string(),
            hash: eventfold_nats::line_hash(line.as_bytes()),
            payload: line.clone(),
        };
        assert_eq!(message, &expected, "message {} is event {i}", i + 1);
    }
}

/// The replicator, run in this process until the stream holds `until`
/// events (or 120 s pass).
pub async fn replicate_until(dir: &Path, urls: &str, stream: &str, until: u64) -> u64 {
    let target = eventfold_nats::Target::new(urls, stream);
    let replicator = eventfold_nats::Replicator::new(dir, target).expect("the replicator opens");
    let progress = replicator.progress();
    let stop = async move {
        let deadline = Instant::now() + Duration::from_secs(120);
        while progress.acked() < until && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    replicator
        .run_until(stop)
        .await
        .expect("the replication succeeds")
        .acked
}

/// The binary's child process, with its standard error collected by a
/// thread; killed when dropped.
pub struct Proc {
    pub child: Child,
    stderr: Option<std::thread::JoinHandle<String>>,
}

impl Proc {
    pub fn spawn(args: &[&str]) -> Proc {
        let mut child = Command::new(binary())
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the binary starts");
        let pipe = child.stderr.take().expect("a stderr pipe");
        let stderr = std::thread::spawn(move || {
            let mut text = String::new();
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                text.push_str(&line);
                text.push('\n');
            }
            text
        });
        Proc {
            child,
            stderr: Some(stderr),
        }
    }

    /// Waits for the process to exit; its exit status and standard error.
    pub fn wait(mut self) -> (std::process::ExitStatus, String) {
        let status = self.child.wait().expect("the process exits");
        let text = self
            .stderr
            .take()
            .map(|t| t.join().unwrap_or_default())
            .unwrap_or_default();
        (status, text)
    }

    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -{signal} failed");
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How many messages `stream` holds (0 if it does not exist yet).
pub async fn stream_len(urls: &str, stream: &str) -> u64 {
    let servers: Vec<&str> = urls.split(',').collect();
    let client = async_nats::connect(servers.as_slice())
        .await
        .expect("a connection");
    let js = jetstream::new(client);
    match js.get_stream(stream).await {
        Ok(mut s) => s.info().await.map_or(0, |i| i.state.messages),
        Err(_) => 0,
    }
}
