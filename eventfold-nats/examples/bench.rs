//! `bench`: the figures of the README.
//!
//! 1. Throughput: a history of `--events` events (1M by default) with
//!    rotations, replicated into a fresh stream; events per second from
//!    the replicator's start to the last acknowledgement.
//! 2. Lag: a writer appending `--rate` events per second (1,000 by
//!    default) for `--seconds` seconds, replicated live; for each event,
//!    the time from its `append` returning to the stream delivering it to
//!    a consumer. Prints p50, p99 and the maximum.
//!
//! It starts its own nats-server (from the path, or `$NATS_SERVER`) on a
//! free loopback port, with file storage and `sync_interval: always`,
//! unless `--server URL` names one.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer::pull::OrderedConfig};
use clap::Parser;
use eventfold::{Event, EventLog, EventReader, View};
use eventfold_nats::{Replicator, StreamView, Target};
use futures_util::StreamExt;
use serde_json::json;

/// Measures replication throughput and lag against a real nats-server.
#[derive(Debug, Parser)]
#[command(
    name = "bench",
    after_help = "Example:\n  cargo run --release --example bench -- --events 1000000"
)]
struct Args {
    /// Events in the history replicated for the throughput figure.
    #[arg(long, default_value_t = 1_000_000)]
    events: u64,
    /// The writer's rate for the lag figure, in events per second.
    #[arg(long, default_value_t = 1000)]
    rate: u64,
    /// How long the lag is measured.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// Use this server instead of starting one.
    #[arg(long, value_name = "URL")]
    server: Option<String>,
}

/// The server the benchmark started, killed when dropped.
struct OwnServer {
    child: Child,
    _dir: tempfile::TempDir,
}

impl Drop for OwnServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_server() -> Result<(String, OwnServer), Box<dyn std::error::Error>> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let dir = tempfile::tempdir()?;
    let config = dir.path().join("server.conf");
    let store = dir.path().join("jetstream");
    std::fs::write(
        &config,
        format!(
            "listen: 127.0.0.1:{port}\njetstream {{\n  store_dir: {store:?}\n  \
             sync_interval: always\n}}\n"
        ),
    )?;
    let binary =
        std::env::var_os("NATS_SERVER").map_or_else(|| "nats-server".into(), PathBuf::from);
    let child = Command::new(&binary)
        .arg("-c")
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", binary.display()))?;
    let server = OwnServer { child, _dir: dir };
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            return Err("nats-server did not start".into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok((format!("nats://127.0.0.1:{port}"), server))
}

fn event(i: u64) -> Event {
    Event::new(
        "deposited",
        json!({"account": format!("acct-{}", i % 100), "amount": i % 1000}),
    )
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (url, _server) = match &args.server {
        Some(url) => (url.clone(), None),
        None => {
            let (url, server) = start_server()?;
            (url, Some(server))
        }
    };
    let version = Command::new(
        std::env::var_os("NATS_SERVER").map_or_else(|| "nats-server".into(), PathBuf::from),
    )
    .arg("--version")
    .output()
    .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    .unwrap_or_default();
    let settings = if args.server.is_some() {
        "the server's own settings"
    } else {
        "file storage, sync_interval: always"
    };
    println!("server: {url} ({version}), {settings}");
    let suffix = std::process::id();
    runtime.block_on(throughput(&url, args.events, &format!("bench-tp-{suffix}")))?;
    runtime.block_on(lag(
        &url,
        args.rate,
        args.seconds,
        &format!("bench-lag-{suffix}"),
    ))?;
    Ok(())
}

/// Writes a history of `n` events, then replicates it and prints the rate.
async fn throughput(url: &str, n: u64, stream: &str) -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let mut log = EventLog::builder(dir.path())
        .max_log_size(64 << 20)
        .open()?;
    let mut i = 0;
    while i < n {
        let end = (i + 1000).min(n);
        log.append_batch(&(i..end).map(event).collect::<Vec<_>>())?;
        i = end;
    }
    drop(log);
    let replicator = Replicator::new(dir.path(), Target::new(url, stream))?;
    let progress = replicator.progress();
    let start = Instant::now();
    let summary = replicator
        .run_until(async move {
            while progress.acked() < n {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
        .await?;
    let secs = start.elapsed().as_secs_f64();
    println!(
        "throughput: {} events replicated in {secs:.2} s: {:.0} events/s",
        summary.acked,
        summary.acked as f64 / secs
    );

    // The same view folded straight over the stream, and over the log on
    // disk, side by side.
    let views = tempfile::tempdir()?;
    let start = Instant::now();
    let view = View::new("balance", balance, views.path().join("stream"))?;
    let mut folded = StreamView::new(view, Target::new(url, stream))?;
    let folded_n = folded.catch_up().await?;
    let stream_secs = start.elapsed().as_secs_f64();
    let start = Instant::now();
    let reader = EventReader::open(dir.path())?;
    let mut local = View::new("balance", balance, views.path().join("local"))?;
    local.refresh(&reader)?;
    let local_secs = start.elapsed().as_secs_f64();
    assert_eq!(folded.state(), local.state(), "the two folds agree");
    println!(
        "view over the stream: {folded_n} events in {stream_secs:.2} s: {:.0} events/s; \
         the same view over the log on disk: {:.0} events/s (ratio {:.2})",
        folded_n as f64 / stream_secs,
        folded_n as f64 / local_secs,
        local_secs / stream_secs
    );
    Ok(())
}

/// The benchmark's view: the sum of the amounts.
fn balance(total: i64, event: &Event) -> i64 {
    total + event.data["amount"].as_i64().unwrap_or(0)
}

/// A writer at `rate` events/s for `seconds`, replicated live: the time
/// from each append to the stream delivering the event.
async fn lag(
    url: &str,
    rate: u64,
    seconds: u64,
    stream: &str,
) -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let n = rate * seconds;
    let mut log = EventLog::open(dir.path())?;
    log.append(&event(0))?; // the log id exists before the replicator starts
    let appended = Arc::new(Mutex::new(vec![Instant::now()]));
    let target = Target::new(url, stream);
    let replicator = Replicator::new(dir.path(), target.clone())?;
    let progress = replicator.progress();
    let done = progress.clone();
    let replicating = tokio::spawn(replicator.run_until(async move {
        while done.acked() < n {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }));
    let times = appended.clone();
    let writer = std::thread::spawn(move || -> eventfold::Result<()> {
        let start = Instant::now();
        for i in 1..n {
            let due = start + Duration::from_micros(i * 1_000_000 / rate);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            log.append(&event(i))?;
            times
                .lock()
                .map_err(|_| lock_poisoned())?
                .push(Instant::now());
        }
        Ok(())
    });
    let client = async_nats::connect(url).await?;
    let js = jetstream::new(client);
    let stream = loop {
        match js.get_stream(stream).await {
            Ok(s) => break s,
            Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    };
    let mut messages = stream
        .create_consumer(OrderedConfig::default())
        .await?
        .messages()
        .await?;
    let mut lags = Vec::with_capacity(n as usize);
    while (lags.len() as u64) < n {
        let Some(message) = messages.next().await else {
            break;
        };
        let received = Instant::now();
        let message = message?;
        let seq = message.info().map_err(|e| e.to_string())?.stream_sequence - 1;
        let at = appended
            .lock()
            .map_err(|_| lock_poisoned())?
            .get(seq as usize)
            .copied();
        if let Some(at) = at {
            lags.push(received.saturating_duration_since(at));
        }
    }
    writer.join().map_err(|_| "the writer panicked")??;
    replicating.await??;
    lags.sort();
    // The first event was appended before the replicator started.
    let lags = &lags[1.min(lags.len())..];
    let pct = |p: f64| lags[((lags.len() as f64 - 1.0) * p) as usize];
    println!(
        "lag at {rate} events/s over {seconds} s ({} events): p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        lags.len(),
        ms(pct(0.5)),
        ms(pct(0.99)),
        ms(pct(1.0))
    );
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn lock_poisoned() -> eventfold::Error {
    eventfold::Error::Io {
        path: None,
        source: std::io::Error::other("a lock was poisoned"),
    }
}
