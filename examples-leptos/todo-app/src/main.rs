//! The server: opens the event log, then serves the page, the server
//! functions, the live stream (`/api/changes`, server-sent events) and the
//! browser bundle with axum.
//!
//! Settings, all from the environment:
//!
//! - `TODO_DATA_DIR`: the eventfold directory (default `./data`).
//! - `TODO_MAX_LOG_SIZE`: bytes of `app.jsonl` past which it is rotated
//!   into `archive.jsonl.zst` (default 1 000 000).
//! - `LEPTOS_SITE_ADDR` (`127.0.0.1:3000`), or `PORT` for
//!   `127.0.0.1:PORT`; port 0 picks a free port, printed at start.
//! - `LEPTOS_SITE_ROOT`: where the browser bundle was built (default
//!   `target/site`).

use axum::Router;
use leptos::prelude::*;
use leptos_axum::{LeptosRoutes, generate_route_list};
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use todo_app::app::{App, shell};
use todo_app::server::ssr::{Store, live_stream};

const DEFAULT_MAX_LOG_SIZE: u64 = 1_000_000;

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("todo-app: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), String> {
    let data_dir = PathBuf::from(env_or("TODO_DATA_DIR", "data"));
    let max_log_size = match std::env::var("TODO_MAX_LOG_SIZE") {
        Ok(value) => value
            .parse()
            .map_err(|e| format!("TODO_MAX_LOG_SIZE={value:?}: {e}"))?,
        Err(_) => DEFAULT_MAX_LOG_SIZE,
    };
    let addr = site_addr()?;
    let site_root = env_or("LEPTOS_SITE_ROOT", "target/site");
    if !Path::new(&site_root).join("pkg/todo_app.js").exists() {
        eprintln!(
            "todo-app: warning: no browser bundle in {site_root}/pkg (build it with ./build.sh); \
             the page works without JavaScript meanwhile"
        );
    }

    let store = Store::open(&data_dir, max_log_size)
        .map_err(|e| format!("cannot open the data directory {}: {e}", data_dir.display()))?;
    let options = LeptosOptions::builder()
        .output_name("todo_app")
        .site_root(site_root.as_str())
        .site_addr(addr)
        .build();

    let context = {
        let store = store.clone();
        move || provide_context(store.clone())
    };
    let live = {
        let store = store.clone();
        move || {
            let store = store.clone();
            async move { live_stream(&store) }
        }
    };
    let app = Router::new()
        .route("/api/changes", axum::routing::get(live))
        .leptos_routes_with_context(&options, generate_route_list(App), context.clone(), {
            let options = options.clone();
            move || shell(options.clone())
        })
        .fallback(leptos_axum::file_and_error_handler_with_context(
            context, shell,
        ))
        .with_state(options);

    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    println!(
        "todo-app: serving http://{local}/ with data in {}",
        data_dir.display()
    );
    axum::serve(listener, app)
        .with_graceful_shutdown({
            let store = store.clone();
            async move {
                shutdown_signal().await;
                // Open pages hold live streams: end them, or the server
                // would wait for every page to be closed.
                store.stop_live();
            }
        })
        .await
        .map_err(|e| format!("server error: {e}"))?;

    store
        .save()
        .map_err(|e| format!("saving the views on shutdown: {e}"))?;
    // Not println!, which panics when standard output cannot be written
    // (a log file on a full disk).
    let _ = writeln!(std::io::stdout(), "todo-app: stopped");
    Ok(())
}

fn env_or(key: &str, default: &str) -> String {
    std::env::var(key).unwrap_or_else(|_| default.to_owned())
}

/// `LEPTOS_SITE_ADDR`, else `127.0.0.1:$PORT`, else `127.0.0.1:3000`.
fn site_addr() -> Result<SocketAddr, String> {
    if let Ok(addr) = std::env::var("LEPTOS_SITE_ADDR") {
        return addr
            .parse()
            .map_err(|e| format!("LEPTOS_SITE_ADDR={addr:?}: {e}"));
    }
    let port = match std::env::var("PORT") {
        Ok(port) => port.parse().map_err(|e| format!("PORT={port:?}: {e}"))?,
        Err(_) => 3000,
    };
    Ok(SocketAddr::from(([127, 0, 0, 1], port)))
}

/// Resolves on Ctrl-C or SIGTERM: the server then finishes the requests in
/// flight and the views are saved.
async fn shutdown_signal() {
    let interrupt = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
}
