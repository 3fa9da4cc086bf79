//! `eventfold-nats`: replicate an eventfold log into NATS JetStream, or
//! mirror a stream into a standby eventfold directory.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use eventfold_nats::{Error, Mirror, Replicator, Target};

/// Replicates an eventfold log into NATS JetStream exactly once, and
/// mirrors a stream into a standby eventfold directory.
#[derive(Debug, Parser)]
#[command(
    name = "eventfold-nats",
    version,
    after_help = "Exit codes: 0 success (also after SIGTERM or Ctrl-C), 1 an error, \
                  2 bad usage, 3 the stream and the log have diverged."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Publish every event of a data directory to a stream, then follow
    /// the writer. Reads the directory beside the live writer, never
    /// writes it; resumes after the stream's last message on restart.
    #[command(after_help = "Examples:\n  \
        eventfold-nats replicate ./data --server nats://127.0.0.1:4222 --stream orders\n  \
        eventfold-nats replicate ./data --server nats://n1:4222,nats://n2:4222,nats://n3:4222 \\\n      \
        --stream orders --replicas 3 --cursor /var/lib/eventfold-nats/orders.cursor")]
    Replicate(ReplicateArgs),
    /// Mirror a stream into a standby eventfold directory (created if
    /// missing), then follow the stream. The standby holds the same lines
    /// with the same sequence numbers: `eventfold verify` accepts it and
    /// the writer's views run on it.
    #[command(after_help = "Examples:\n  \
        eventfold-nats mirror --server nats://127.0.0.1:4222 --stream orders ./standby\n  \
        eventfold-nats mirror --server nats://127.0.0.1:4222 --stream orders ./standby --once")]
    Mirror(MirrorArgs),
}

#[derive(Debug, clap::Args)]
struct Connection {
    /// NATS server URL; several, separated by commas, for a cluster.
    #[arg(long, value_name = "URL")]
    server: String,
    /// The JetStream stream's name.
    #[arg(long, value_name = "NAME")]
    stream: String,
    /// The subject the events are published on [default: eventfold.NAME].
    #[arg(long, value_name = "S")]
    subject: Option<String>,
}

impl Connection {
    fn target(&self) -> Target {
        let target = Target::new(&self.server, &self.stream);
        match &self.subject {
            Some(subject) => target.with_subject(subject),
            None => target,
        }
    }
}

#[derive(Debug, clap::Args)]
struct ReplicateArgs {
    /// The eventfold data directory.
    dir: PathBuf,
    #[command(flatten)]
    connection: Connection,
    /// Replicas of the stream when it is created (3 in a cluster).
    #[arg(long, default_value_t = 1)]
    replicas: usize,
    /// A file, outside the data directory, recording how many events the
    /// server acknowledged, so that a stream that lost some is reported.
    #[arg(long, value_name = "FILE")]
    cursor: Option<PathBuf>,
    /// How many publishes may await their acknowledgement at once.
    #[arg(long, default_value_t = 256, value_name = "N")]
    in_flight: usize,
}

#[derive(Debug, clap::Args)]
struct MirrorArgs {
    #[command(flatten)]
    connection: Connection,
    /// The standby eventfold directory.
    dest: PathBuf,
    /// Mirror what the stream holds now, then exit, instead of following.
    #[arg(long)]
    once: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("eventfold-nats: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("eventfold-nats: {e}");
            match e {
                Error::Divergence { .. } => ExitCode::from(3),
                _ => ExitCode::FAILURE,
            }
        }
    }
}

async fn run(cli: Cli) -> Result<(), Error> {
    let stop = stop_signal().map_err(|e| Error::Nats {
        what: "listening for SIGTERM".into(),
        detail: e.to_string(),
    })?;
    match cli.command {
        Command::Replicate(args) => {
            let target = args.connection.target().replicas(args.replicas);
            let mut replicator = Replicator::new(&args.dir, target)?.in_flight(args.in_flight);
            if let Some(cursor) = &args.cursor {
                replicator = replicator.cursor_file(cursor);
            }
            let progress = replicator.progress();
            let ticker = std::io::stderr().is_terminal().then(|| {
                tokio::spawn(async move {
                    let start = Instant::now();
                    loop {
                        tokio::time::sleep(Duration::from_millis(500)).await;
                        let acked = progress.acked();
                        let rate = acked as f64 / start.elapsed().as_secs_f64().max(1e-3);
                        eprint!("\rreplicated {acked} events ({rate:.0}/s since start)   ");
                    }
                })
            });
            let summary = replicator.run_until(stop).await;
            if let Some(ticker) = ticker {
                ticker.abort();
                eprintln!();
            }
            let summary = summary?;
            eprintln!(
                "eventfold-nats: stopped; the stream holds {} events{}",
                summary.acked,
                if summary.republished > 0 {
                    format!(" ({} lost ones published again)", summary.republished)
                } else {
                    String::new()
                }
            );
            Ok(())
        }
        Command::Mirror(args) => {
            let mut mirror = Mirror::open(&args.dest, args.connection.target())?;
            if args.once {
                let next = mirror.catch_up().await?;
                eprintln!("eventfold-nats: the standby holds {next} events");
                return Ok(());
            }
            mirror.run_until(stop).await?;
            eprintln!(
                "eventfold-nats: stopped; the standby holds {} events",
                mirror.next_seq()
            );
            Ok(())
        }
    }
}

/// A future that completes on SIGTERM or SIGINT (Ctrl-C).
fn stop_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    })
}
