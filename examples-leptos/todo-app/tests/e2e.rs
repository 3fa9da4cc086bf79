//! End-to-end tests: the real server binary, used in headless Chromium
//! through chromedriver (WebDriver), the way a person would use it.
//!
//! Each test starts the server on 127.0.0.1 on a free port with a fresh data
//! directory, and stops it at the end (it is killed if the test fails).
//!
//! Every wait is for a condition (a line a program prints, an element with
//! the expected text, the hydration marker), polled until [`TIMEOUT`]; no
//! step sleeps for a fixed time and hopes. Before an action is sent, the
//! page shows the result of the one before (typing may go on meanwhile, as
//! a person's does).
//!
//! Needs the browser bundle in `target/site` (`./build.sh --site-only`) and
//! Debian's `chromium` and `chromium-driver`; `./test.sh` sees to both.
//! `CHROMIUM` and `CHROMEDRIVER` override the programs used.

use fantoccini::elements::Element;
use fantoccini::error::CmdError;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};
use std::future::Future;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// How long anything may take to appear before a test fails: generous,
/// because the tests run side by side, each with its own Chromium, on
/// machines that may be busy; a passing wait takes a fraction of it.
const TIMEOUT: Duration = Duration::from_secs(60);
/// How long one test may take in all.
const TEST_LIMIT: Duration = Duration::from_secs(300);
/// WebDriver's code for the Enter key.
const ENTER: &str = "\u{E007}";

fn site_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("target/site")
}

// ---------------------------------------------------------------- server

/// The app's server process, killed when dropped.
struct Server {
    child: Child,
    /// `http://127.0.0.1:PORT`
    url: String,
}

impl Server {
    fn start(data_dir: &Path) -> Server {
        Server::start_with(data_dir, &[])
    }

    fn start_with(data_dir: &Path, env: &[(&str, &str)]) -> Server {
        Server::spawn(Command::new(env!("CARGO_BIN_EXE_todo-app")), data_dir, env)
    }

    /// Starts the server with `SIGXFSZ` ignored, so that a file-size limit
    /// set on it later ([`Server::limit_file_size`]) makes its writes fail
    /// with an error (`EFBIG`) instead of killing it: the way a full or
    /// failing disk looks to a program. The shell execs the server, which
    /// keeps the shell's process id and the ignored signal.
    ///
    /// Its standard error goes to the file `stderr`: the limit applies to
    /// that file too, as it would to a log on the full disk, so the server
    /// must go on when it cannot write its own log.
    fn start_ignoring_file_size_signal(data_dir: &Path, stderr: &Path) -> Server {
        let mut command = Command::new("sh");
        command
            .arg("-c")
            .arg("trap '' XFSZ; exec \"$0\"")
            .arg(env!("CARGO_BIN_EXE_todo-app"))
            .stderr(std::fs::File::create(stderr).expect("create the server's log"));
        Server::spawn(command, data_dir, &[])
    }

    fn spawn(mut command: Command, data_dir: &Path, env: &[(&str, &str)]) -> Server {
        assert!(
            site_root().join("pkg/todo_app_bg.wasm").exists(),
            "no browser bundle in {}: run ./build.sh --site-only (or ./test.sh) first",
            site_root().display()
        );
        let mut child = command
            .env("TODO_DATA_DIR", data_dir)
            .env("PORT", "0")
            .env_remove("LEPTOS_SITE_ADDR")
            .env("LEPTOS_SITE_ROOT", site_root())
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("cannot start the server binary");
        // Printed once the port is bound: from then on, requests are served.
        let url = announced(&mut child, "the server", |line| {
            let rest = line.strip_prefix("todo-app: serving ")?;
            let url = rest.split_whitespace().next()?;
            Some(url.trim_end_matches('/').to_owned())
        });
        Server { child, url }
    }

    /// `127.0.0.1:PORT`
    fn addr(&self) -> &str {
        self.url.trim_start_matches("http://")
    }

    /// Sets the running server's file-size limit (`prlimit`, which needs
    /// no privilege for one's own processes): `Some(bytes)` makes every
    /// write that would grow a file past `bytes` fail, `None` lifts the
    /// limit again.
    fn limit_file_size(&self, bytes: Option<u64>) {
        let limit = bytes.map_or_else(|| "unlimited".to_owned(), |b| format!("{b}:unlimited"));
        let status = Command::new("prlimit")
            .args([
                "--pid",
                &self.child.id().to_string(),
                &format!("--fsize={limit}"),
            ])
            .status()
            .expect("cannot run prlimit (util-linux)");
        assert!(status.success(), "prlimit --fsize={limit} failed");
    }

    /// Whether the server process is still the one started (it did not
    /// exit or get restarted).
    fn is_running(&mut self) -> bool {
        self.child
            .try_wait()
            .expect("wait for the server")
            .is_none()
    }

    /// Stops the server as Ctrl-C would (SIGTERM) and waits for it.
    fn stop(&mut self) -> ExitStatus {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for the server") {
                return status;
            }
            assert!(Instant::now() < deadline, "the server did not stop");
            thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits for the first line of `child`'s standard output that `parse`
/// accepts, and returns what it made of it. A thread goes on reading the
/// output afterwards, so the child never blocks on a full pipe. Kills the
/// child and fails the test if it exits first or takes over [`TIMEOUT`].
fn announced(child: &mut Child, what: &str, parse: fn(&str) -> Option<String>) -> String {
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(value) = parse(&line) {
                let _ = tx.send(value);
            }
        }
    });
    match rx.recv_timeout(TIMEOUT) {
        Ok(value) => value,
        Err(e) => {
            let _ = child.kill();
            let _ = child.wait();
            match e {
                mpsc::RecvTimeoutError::Timeout => {
                    panic!("{what} did not start within {TIMEOUT:?}")
                }
                mpsc::RecvTimeoutError::Disconnected => panic!("{what} exited before it started"),
            }
        }
    }
}

/// A request as a plain HTTP client sends it, without a browser: a form
/// post to a server function. Returns the status and the body.
fn http_post(addr: &str, path: &str, form: &[(&str, &str)]) -> (u16, String) {
    let body = form
        .iter()
        .map(|(key, value)| format!("{key}={}", form_encode(value)))
        .collect::<Vec<_>>()
        .join("&");
    let mut stream = TcpStream::connect(addr).expect("connect to the server");
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: application/json\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .expect("read the response");
    let status = response
        .get(9..12)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {response:?}"));
    let body = response.split_once("\r\n\r\n").map_or("", |(_, body)| body);
    (status, body.to_owned())
}

fn form_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The todos' texts, from the `get_todos` server function.
fn todo_texts(addr: &str) -> Vec<String> {
    let (status, body) = http_post(addr, "/api/get_todos", &[]);
    assert_eq!(status, 200, "{body}");
    let todos: Value = serde_json::from_str(&body).expect("get_todos returns JSON");
    todos
        .as_array()
        .expect("a list")
        .iter()
        .map(|todo| todo["text"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// A server function's answer to a plain HTTP client, which must be a
/// success, as JSON.
fn call(addr: &str, function: &str, form: &[(&str, &str)]) -> Value {
    let (status, body) = http_post(addr, &format!("/api/{function}"), form);
    assert_eq!(status, 200, "{function}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{function}: {e}: {body}"))
}

/// The id of the live todo with this text, from `get_todos`.
fn todo_id(addr: &str, text: &str) -> String {
    let todos = call(addr, "get_todos", &[]);
    let todo = todos
        .as_array()
        .expect("a list")
        .iter()
        .find(|todo| todo["text"] == text)
        .unwrap_or_else(|| panic!("no todo {text:?} in {todos}"));
    todo["id"].as_str().expect("an id").to_owned()
}

fn log_len(data_dir: &Path) -> u64 {
    std::fs::metadata(data_dir.join("app.jsonl")).map_or(0, |m| m.len())
}

// ---------------------------------------------------------------- browser

/// A chromedriver process in its own process group; dropping it kills the
/// group, browsers included.
struct Driver {
    child: Child,
    url: String,
}

/// One browser session, with its own fresh profile directory.
struct Browser {
    client: Client,
    _profile: tempfile::TempDir,
}

impl Driver {
    /// Starts chromedriver on a port it picks itself (`--port=0`), and
    /// waits until it says it listens: no port is chosen here and then
    /// taken by someone else before chromedriver binds it.
    fn start() -> Driver {
        let program = std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".into());
        let mut child = Command::new(&program)
            .arg("--port=0")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start {program} ({e}): install chromium-driver, or run ./test.sh")
            });
        let port = announced(&mut child, "chromedriver", |line| {
            let rest = line.split_once("started successfully on port ")?.1;
            Some(rest.trim_end_matches('.').to_owned())
        });
        Driver {
            child,
            url: format!("http://127.0.0.1:{port}"),
        }
    }

    /// A new headless Chromium; `javascript: false` turns scripts off.
    async fn browser(&self, javascript: bool) -> Browser {
        let profile = tempfile::tempdir().expect("a profile directory");
        let mut args = vec![
            "--headless".to_owned(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-dev-shm-usage".into(),
            "--disable-quic".into(),
            "--no-first-run".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--window-size=1000,720".into(),
            format!("--user-data-dir={}", profile.path().display()),
        ];
        if !javascript {
            args.push("--blink-settings=scriptEnabled=false".into());
        }
        let binary = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
        let capabilities = json!({"goog:chromeOptions": {"binary": binary, "args": args}});
        let Value::Object(capabilities) = capabilities else {
            unreachable!()
        };
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities)
            .connect(&self.url)
            .await
            .expect("cannot start a Chromium session through chromedriver");
        Browser {
            client,
            _profile: profile,
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill")
            .args(["-KILL", "--", &group])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.wait();
    }
}

/// Runs a test's steps, failing it if they take longer than [`TEST_LIMIT`].
async fn bounded(steps: impl Future<Output = ()>) {
    if tokio::time::timeout(TEST_LIMIT, steps).await.is_err() {
        panic!("the test took longer than {TEST_LIMIT:?}");
    }
}

/// Polls `check` until it returns `Ok`, for at most [`TIMEOUT`]; fails the
/// test with what it saw last.
async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + TIMEOUT;
    loop {
        match check().await {
            Ok(value) => return value,
            Err(seen) if Instant::now() > deadline => {
                panic!("timed out waiting for {what}; last seen: {seen}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

fn seen(e: CmdError) -> String {
    format!("WebDriver error: {e}")
}

/// The rows of the list: text and whether done.
async fn rows(c: &Client) -> Result<Vec<(String, bool)>, CmdError> {
    let mut rows = Vec::new();
    for row in c.find_all(Locator::Css(".todos .todo")).await? {
        let text = row.find(Locator::Css(".text")).await?.text().await?;
        let class = row.attr("class").await?.unwrap_or_default();
        rows.push((text, class.split_whitespace().any(|c| c == "done")));
    }
    Ok(rows)
}

/// Created, open, done, deleted, as the statistics panel shows them.
async fn stats(c: &Client) -> Result<[u64; 4], CmdError> {
    let mut figures = [0; 4];
    for (figure, key) in figures
        .iter_mut()
        .zip(["created", "open", "done", "deleted"])
    {
        let css = format!("[data-stat='{key}'] dd");
        let text = c.find(Locator::Css(&css)).await?.text().await?;
        *figure = text.trim().parse().unwrap_or(u64::MAX);
    }
    Ok(figures)
}

/// Waits until the page shows exactly these rows and these statistics.
async fn expect_page(c: &Client, want_rows: &[(&str, bool)], want_stats: [u64; 4]) {
    let want: Vec<(String, bool)> = want_rows.iter().map(|(t, d)| (t.to_string(), *d)).collect();
    eventually("the list and the statistics", || async {
        let got = (rows(c).await.map_err(seen)?, stats(c).await.map_err(seen)?);
        if got == (want.clone(), want_stats) {
            Ok(())
        } else {
            Err(format!("{got:?}, want {:?}", (&want, want_stats)))
        }
    })
    .await
}

/// Opens the page; with JavaScript, waits until it is hydrated.
async fn open(c: &Client, url: &str, javascript: bool) {
    c.goto(&format!("{url}/")).await.expect("open the page");
    if javascript {
        eventually("the page to hydrate", || async {
            match c
                .find_all(Locator::Css(".page[data-hydrated='true']"))
                .await
            {
                Ok(found) if !found.is_empty() => Ok(()),
                Ok(_) => Err("not hydrated yet".into()),
                Err(e) => Err(seen(e)),
            }
        })
        .await;
    }
}

async fn input(c: &Client) -> Element {
    c.find(Locator::Css(".add-input"))
        .await
        .expect("the text box")
}

/// Waits until the text box holds exactly `want`.
async fn expect_box(c: &Client, want: &str) {
    eventually(&format!("the text box to hold {want:?}"), || async {
        let value = input(c).await.prop("value").await.map_err(seen)?;
        if value.as_deref() == Some(want) {
            Ok(())
        } else {
            Err(format!("{value:?}"))
        }
    })
    .await
}

/// Types a todo and presses Enter.
async fn add_with_enter(c: &Client, text: &str) {
    let input = input(c).await;
    input.send_keys(text).await.expect("type");
    input.send_keys(ENTER).await.expect("press Enter");
}

/// Types a todo and clicks "Add".
async fn add_with_button(c: &Client, text: &str) {
    input(c).await.send_keys(text).await.expect("type");
    click(c, ".add-button").await;
}

async fn click(c: &Client, css: &str) {
    c.find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no {css}: {e}"))
        .click()
        .await
        .unwrap_or_else(|e| panic!("cannot click {css}: {e}"));
}

/// Clicks a button (`.check` or `.delete`) in the row with this text.
///
/// The list is drawn anew whenever it is fetched, so a row found a moment
/// ago can be gone by the time it is clicked: then it is looked up again.
/// A stale element is the only error retried, since it means the click did
/// not happen; a click that may have happened is never repeated.
async fn click_in_row(c: &Client, text: &str, button: &str) {
    eventually(
        &format!("a click on {button} in the row {text:?}"),
        || async {
            let stale = |e: CmdError| {
                if e.is_stale_element_reference() {
                    Err(seen(e))
                } else {
                    panic!("cannot click {button} in the row {text:?}: {e}")
                }
            };
            for row in c
                .find_all(Locator::Css(".todos .todo"))
                .await
                .map_err(seen)?
            {
                let found = async {
                    let row_text = row.find(Locator::Css(".text")).await?.text().await?;
                    if row_text != text {
                        return Ok(false);
                    }
                    row.find(Locator::Css(button)).await?.click().await?;
                    Ok::<_, CmdError>(true)
                };
                match found.await {
                    Ok(true) => return Ok(()),
                    Ok(false) => {}
                    Err(e) => return stale(e),
                }
            }
            Err("not in the list".into())
        },
    )
    .await
}

/// Waits for the message with this id to contain `part`.
async fn expect_message(c: &Client, id: &str, part: &str) {
    eventually(&format!("a message containing {part:?}"), || async {
        let text = c
            .find(Locator::Id(id))
            .await
            .map_err(seen)?
            .text()
            .await
            .map_err(seen)?;
        if text.contains(part) {
            Ok(())
        } else {
            Err(text)
        }
    })
    .await
}

/// Fails the test if the page shows anything of the server's insides:
/// the data directory's path, an OS error, the storage library's words.
async fn assert_no_internals(c: &Client, data_dir: &Path) {
    let source = c.source().await.expect("the page's source");
    let data_dir = data_dir.to_string_lossy();
    for internal in [
        &*data_dir,
        "os error",
        "File too large",
        "Poisoned",
        "poisoned",
        "eventfold::",
    ] {
        assert!(
            !source.contains(internal),
            "the page shows {internal:?}:\n{source}"
        );
    }
}

/// Waits until the page's live stream (server-sent events) is open.
async fn expect_live(c: &Client) {
    eventually("the live stream to open", || async {
        match c.find_all(Locator::Css(".page[data-live='open']")).await {
            Ok(found) if !found.is_empty() => Ok(()),
            Ok(_) => Err("not open yet".into()),
            Err(e) => Err(seen(e)),
        }
    })
    .await;
}

/// Makes the page note, in the browser's own clock (milliseconds), when
/// each row state first shows (`text|done`, e.g. `Buy milk|false`) and
/// when one goes (`gone|text|done`): a change is timed when the browser
/// draws it, not when a poll of the test happens to see it.
async fn watch_rows(c: &Client) {
    let script = r#"
        const key = li => li.querySelector('.text').textContent + '|' + li.classList.contains('done');
        const seen = window.__seen = {};
        let present = new Set();
        const scan = () => {
            const now = Date.now();
            const rows = new Set([...document.querySelectorAll('.todos .todo')].map(key));
            for (const k of rows) if (!(k in seen)) seen[k] = now;
            for (const k of present) if (!rows.has(k) && !(('gone|' + k) in seen)) seen['gone|' + k] = now;
            present = rows;
        };
        scan();
        new MutationObserver(scan).observe(document.body,
            {subtree: true, childList: true, characterData: true, attributes: true});
        return null;
    "#;
    c.execute(script, vec![]).await.expect("watch the rows");
}

/// The browser's clock, in milliseconds since the Unix epoch.
async fn now_ms(c: &Client) -> u64 {
    let now = c
        .execute("return Date.now();", vec![])
        .await
        .expect("Date.now");
    now.as_u64().expect("a number")
}

/// Waits until the page has noted `key` (see [`watch_rows`]) and returns
/// how long after `since` (the same clock) that was.
async fn delay_until(c: &Client, key: &str, since: u64) -> Duration {
    let at = eventually(&format!("the page to show {key:?}"), || async {
        let noted = c
            .execute(
                "return window.__seen[arguments[0]] || null;",
                vec![json!(key)],
            )
            .await
            .map_err(seen)?;
        noted.as_u64().ok_or_else(|| format!("{noted}"))
    })
    .await;
    Duration::from_millis(at.saturating_sub(since))
}

async fn has(c: &Client, css: &str) -> bool {
    !c.find_all(Locator::Css(css))
        .await
        .expect("find")
        .is_empty()
}

async fn save_screenshot(c: &Client, name: &str) -> PathBuf {
    let png = c.screenshot().await.expect("screenshot");
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/e2e");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, png).unwrap();
    path
}

// ---------------------------------------------------------------- tests

/// Add three todos, toggle, delete: the list and the statistics change in
/// place, without a page load; a reload and a server restart show the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_day_with_the_app_survives_reload_and_restart() {
    bounded(a_day_with_the_app_survives_reload_and_restart_steps()).await;
}

async fn a_day_with_the_app_survives_reload_and_restart_steps() {
    let data = tempfile::tempdir().unwrap();
    let mut server = Server::start(data.path());
    let driver = Driver::start();
    let browser = driver.browser(true).await;
    let c = &browser.client;

    open(c, &server.url, true).await;
    assert!(has(c, ".empty").await, "an empty list says so");
    expect_page(c, &[], [0, 0, 0, 0]).await;
    // Survives as long as the page is not loaded again.
    c.execute("window.__noReload = 'same page'; return null;", vec![])
        .await
        .unwrap();

    add_with_enter(c, "Buy milk").await;
    expect_page(c, &[("Buy milk", false)], [1, 1, 0, 0]).await;
    expect_box(c, "").await;
    add_with_button(c, "Book the dentist").await;
    expect_page(
        c,
        &[("Buy milk", false), ("Book the dentist", false)],
        [2, 2, 0, 0],
    )
    .await;
    add_with_enter(c, "Renew passport").await;
    let three = [
        ("Buy milk", false),
        ("Book the dentist", false),
        ("Renew passport", false),
    ];
    expect_page(c, &three, [3, 3, 0, 0]).await;

    click_in_row(c, "Buy milk", ".check").await;
    expect_page(
        c,
        &[
            ("Buy milk", true),
            ("Book the dentist", false),
            ("Renew passport", false),
        ],
        [3, 2, 1, 0],
    )
    .await;

    // Back and forth: "done" must not grow.
    click_in_row(c, "Book the dentist", ".check").await;
    expect_page(
        c,
        &[
            ("Buy milk", true),
            ("Book the dentist", true),
            ("Renew passport", false),
        ],
        [3, 1, 2, 0],
    )
    .await;
    click_in_row(c, "Book the dentist", ".check").await;
    expect_page(
        c,
        &[
            ("Buy milk", true),
            ("Book the dentist", false),
            ("Renew passport", false),
        ],
        [3, 2, 1, 0],
    )
    .await;

    click_in_row(c, "Renew passport", ".delete").await;
    expect_page(
        c,
        &[("Buy milk", true), ("Book the dentist", false)],
        [3, 1, 1, 1],
    )
    .await;

    let marker = c.execute("return window.__noReload || null;", vec![]).await;
    assert_eq!(
        marker.unwrap(),
        json!("same page"),
        "the page was never reloaded"
    );

    // A fuller list for the picture in the README, the second todo typed
    // while the first may still be on its way: the box is emptied as soon
    // as a todo is sent, and what is typed next stays in it. Enter is
    // pressed once the first shows, as the "Add" button is disabled (and
    // Enter does nothing) while a todo is being saved.
    add_with_enter(c, "Water the plants").await;
    expect_box(c, "").await;
    let report = "Send the quarterly report to Anna";
    input(c).await.send_keys(report).await.expect("type");
    let plants = [
        ("Buy milk", true),
        ("Book the dentist", false),
        ("Water the plants", false),
    ];
    expect_page(c, &plants, [4, 2, 1, 1]).await;
    expect_box(c, report).await;
    input(c).await.send_keys(ENTER).await.expect("press Enter");
    let four = [plants[0], plants[1], plants[2], (report, false)];
    expect_page(c, &four, [5, 3, 1, 1]).await;
    click_in_row(c, "Water the plants", ".check").await;
    let full = [
        ("Buy milk", true),
        ("Book the dentist", false),
        ("Water the plants", true),
        ("Send the quarterly report to Anna", false),
    ];
    let full_stats = [5, 2, 2, 1];
    expect_page(c, &full, full_stats).await;
    click(c, ".add-input").await;
    // Tall enough for the activity feed below the list.
    c.set_window_size(1000, 1150)
        .await
        .expect("resize the window");
    let picture = save_screenshot(c, "todo-app.png").await;
    println!("screenshot: {}", picture.display());

    c.refresh().await.unwrap();
    expect_page(c, &full, full_stats).await;

    // Restart: a clean stop (as Ctrl-C), then a new server on the same data.
    assert!(server.stop().success(), "the server stops cleanly");
    for view in ["todos", "stats"] {
        let snapshot = data.path().join(format!("views/{view}.snapshot.json"));
        assert!(snapshot.exists(), "{} saved on stop", snapshot.display());
    }
    let events = std::fs::read_to_string(data.path().join("app.jsonl")).unwrap();
    assert_eq!(
        events.lines().count(),
        5 + 4 + 1,
        "5 added, 4 toggled, 1 deleted"
    );
    let server = Server::start(data.path());
    open(c, &server.url, true).await;
    expect_page(c, &full, full_stats).await;

    browser.client.close().await.unwrap();
}

/// Empty, blank and too long text, and ids that no longer exist, get a
/// message and write nothing; HTML in a todo is shown as text.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_a_message_and_writes_nothing() {
    bounded(bad_input_gets_a_message_and_writes_nothing_steps()).await;
}

async fn bad_input_gets_a_message_and_writes_nothing_steps() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    let driver = Driver::start();
    let browser = driver.browser(true).await;
    let c = &browser.client;
    open(c, &server.url, true).await;

    add_with_enter(c, "Existing todo").await;
    let one = [("Existing todo", false)];
    expect_page(c, &one, [1, 1, 0, 0]).await;
    let before = log_len(data.path());

    // Each message differs from the one before, so each is seen anew.
    click(c, ".add-button").await;
    expect_message(c, "add-error", "Type what you need to do first").await;
    add_with_enter(c, &"x".repeat(501)).await;
    expect_message(
        c,
        "add-error",
        "at most 500 characters long; this one has 501",
    )
    .await;
    // A refused todo is put back in the box, to be corrected.
    expect_box(c, &"x".repeat(501)).await;
    input(c).await.clear().await.unwrap();
    add_with_enter(c, "     ").await;
    expect_message(c, "add-error", "Type what you need to do first").await;
    expect_page(c, &one, [1, 1, 0, 0]).await;
    assert_eq!(log_len(data.path()), before, "nothing was written");

    // HTML is text, not markup.
    input(c).await.clear().await.unwrap();
    let html = "<script>alert(1)</script><b>bold</b> & <i>co</i>";
    add_with_enter(c, html).await;
    expect_page(c, &[("Existing todo", false), (html, false)], [2, 2, 0, 0]).await;
    assert!(
        !has(c, "#add-error").await,
        "the message goes once a todo is added"
    );
    assert!(!has(c, ".todos b, .todos i, .todos script").await);
    let shown = c.find(Locator::Css(".todos .todo:last-child .text")).await;
    let markup = shown.unwrap().html(true).await.unwrap();
    assert!(markup.contains("&lt;script&gt;"), "{markup}");

    // Ids that do not exist: from a plain HTTP client...
    let before = log_len(data.path());
    for function in ["toggle_todo", "delete_todo"] {
        let (status, body) = http_post(
            server.addr(),
            &format!("/api/{function}"),
            &[("id", "no-such-id")],
        );
        assert_eq!(status, 500, "{body}");
        assert!(body.contains("NotFound"), "{body}");
    }
    assert_eq!(log_len(data.path()), before, "nothing was written");

    // ...and from a page whose form names a todo that another client
    // deleted. (The page drops a todo deleted elsewhere within a second,
    // through its live stream; a click on its row can still be on its way,
    // which is what pointing the form at the deleted id does here.)
    let texts = todo_texts(server.addr());
    assert_eq!(texts, ["Existing todo", html]);
    let id = todo_id(server.addr(), "Existing todo");
    let (status, body) = http_post(server.addr(), "/api/delete_todo", &[("id", &id)]);
    assert_eq!(status, 200, "{body}");
    expect_page(c, &[(html, false)], [2, 1, 0, 1]).await;
    let before = log_len(data.path());
    c.execute(
        "document.querySelector('.todos .todo .toggle-form input[name=id]').value = arguments[0]; \
         return null;",
        vec![json!(id)],
    )
    .await
    .unwrap();
    click_in_row(c, html, ".check").await;
    expect_message(c, "row-error", "no longer exists").await;
    expect_page(c, &[(html, false)], [2, 1, 0, 1]).await;
    assert_eq!(log_len(data.path()), before, "nothing was written");

    browser.client.close().await.unwrap();
}

/// Four plain HTTP clients and two browsers add todos at the same time,
/// with a log small enough to rotate meanwhile; none is lost, not even after
/// the server is killed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_clients_lose_no_todo() {
    bounded(concurrent_clients_lose_no_todo_steps()).await;
}

async fn concurrent_clients_lose_no_todo_steps() {
    const HTTP_CLIENTS: usize = 4;
    const PER_HTTP_CLIENT: usize = 10;
    let data = tempfile::tempdir().unwrap();
    let server = Server::start_with(data.path(), &[("TODO_MAX_LOG_SIZE", "2000")]);
    let driver = Driver::start();
    let (a, b) = tokio::join!(driver.browser(true), driver.browser(true));
    tokio::join!(
        open(&a.client, &server.url, true),
        open(&b.client, &server.url, true)
    );

    let mut expected = Vec::new();
    let http: Vec<_> = (0..HTTP_CLIENTS)
        .map(|client| {
            let addr = server.addr().to_owned();
            let texts: Vec<String> = (0..PER_HTTP_CLIENT)
                .map(|n| format!("http client {client}, todo {n}"))
                .collect();
            expected.extend(texts.clone());
            thread::spawn(move || {
                for text in texts {
                    let (status, body) = http_post(&addr, "/api/add_todo", &[("text", &text)]);
                    assert_eq!(status, 200, "{body}");
                }
            })
        })
        .collect();
    let browser_texts =
        |name: &str| -> Vec<String> { (0..3).map(|n| format!("{name}, todo {n}")).collect() };
    let (texts_a, texts_b) = (browser_texts("browser A"), browser_texts("browser B"));
    expected.extend(texts_a.clone());
    expected.extend(texts_b.clone());
    let add_all = |c: &'static str, client: &Client, texts: Vec<String>| {
        let client = client.clone();
        async move {
            for text in texts {
                add_with_enter(&client, &text).await;
                eventually(&format!("{c} to show {text:?}"), || async {
                    let rows = rows(&client).await.map_err(seen)?;
                    if rows.iter().any(|(t, _)| *t == text) {
                        Ok(())
                    } else {
                        Err(format!("{} rows", rows.len()))
                    }
                })
                .await;
            }
        }
    };
    tokio::join!(
        add_all("browser A", &a.client, texts_a),
        add_all("browser B", &b.client, texts_b)
    );
    for client in http {
        client.join().expect("an HTTP client failed");
    }

    let total = expected.len() as u64;
    assert_eq!(total, 46);
    let check = |mut texts: Vec<String>| {
        texts.sort();
        let mut want = expected.clone();
        want.sort();
        assert_eq!(texts, want, "every todo exactly once");
    };
    check(todo_texts(server.addr()));
    assert!(
        data.path().join("archive.jsonl.zst").exists(),
        "the log rotated while the clients wrote"
    );
    a.client.refresh().await.unwrap();
    eventually("all todos in a reloaded page", || async {
        let got = (
            rows(&a.client).await.map_err(seen)?.len() as u64,
            stats(&a.client).await.map_err(seen)?,
        );
        if got == (total, [total, total, 0, 0]) {
            Ok(())
        } else {
            Err(format!("{got:?}"))
        }
    })
    .await;

    // A hard kill loses nothing that was acknowledged.
    drop(server);
    let server = Server::start_with(data.path(), &[("TODO_MAX_LOG_SIZE", "2000")]);
    check(todo_texts(server.addr()));

    let _ = a.client.close().await;
    let _ = b.client.close().await;
}

/// With JavaScript off, the same forms work by plain form posts, and
/// messages still show.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forms_work_without_javascript() {
    bounded(forms_work_without_javascript_steps()).await;
}

async fn forms_work_without_javascript_steps() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    let driver = Driver::start();
    let browser = driver.browser(false).await;
    let c = &browser.client;

    open(c, &server.url, false).await;
    expect_page(c, &[], [0, 0, 0, 0]).await;
    // Survives only as long as the page is not loaded again. WebDriver runs
    // this script even with the page's own scripts off.
    c.execute("window.__noReload = 'same page'; return null;", vec![])
        .await
        .unwrap();

    add_with_button(c, "Typed without JavaScript").await;
    expect_page(c, &[("Typed without JavaScript", false)], [1, 1, 0, 0]).await;
    // A hydrated form would have sent a request and kept the page; a plain
    // HTML form post loads it anew.
    let marker = c.execute("return window.__noReload || null;", vec![]).await;
    assert_eq!(
        marker.unwrap(),
        Value::Null,
        "the form was posted as plain HTML, loading the page anew"
    );
    assert!(
        !has(c, ".page[data-hydrated]").await,
        "JavaScript is off: the page is not hydrated"
    );
    add_with_enter(c, "Submitted with Enter").await;
    let two = [
        ("Typed without JavaScript", false),
        ("Submitted with Enter", false),
    ];
    expect_page(c, &two, [2, 2, 0, 0]).await;

    click_in_row(c, "Typed without JavaScript", ".check").await;
    expect_page(
        c,
        &[
            ("Typed without JavaScript", true),
            ("Submitted with Enter", false),
        ],
        [2, 1, 1, 0],
    )
    .await;
    click_in_row(c, "Submitted with Enter", ".delete").await;
    let one = [("Typed without JavaScript", true)];
    expect_page(c, &one, [2, 0, 1, 1]).await;

    let before = log_len(data.path());
    click(c, ".add-button").await;
    expect_message(c, "add-error", "Type what you need to do first").await;
    add_with_enter(c, &"y".repeat(600)).await;
    expect_message(c, "add-error", "this one has 600").await;
    expect_page(c, &one, [2, 0, 1, 1]).await;
    assert_eq!(log_len(data.path()), before, "nothing was written");
    save_screenshot(c, "todo-app-no-javascript.png").await;

    // A good todo clears the message.
    add_with_enter(c, "Fixed it").await;
    expect_page(c, &[one[0], ("Fixed it", false)], [3, 1, 1, 1]).await;
    assert!(!has(c, "#add-error").await);

    browser.client.close().await.unwrap();
}

/// Two browsers, each with the page open: what one does shows in the
/// other without a reload, and so do todos that another program imports
/// through the server; each within a second of being sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_show_live_in_every_open_page() {
    bounded(changes_show_live_in_every_open_page_steps()).await;
}

async fn changes_show_live_in_every_open_page_steps() {
    /// The longest a change may take to show in the other page.
    const LIVE_LIMIT: Duration = Duration::from_secs(1);
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    let driver = Driver::start();
    let (a, b) = tokio::join!(driver.browser(true), driver.browser(true));
    let (a, b) = (&a.client, &b.client);
    tokio::join!(open(a, &server.url, true), open(b, &server.url, true));
    tokio::join!(expect_live(a), expect_live(b));
    for c in [a, b] {
        c.execute("window.__noReload = 'same page'; return null;", vec![])
            .await
            .unwrap();
        watch_rows(c).await;
    }
    let mut delays = Vec::new();

    // Added in A: shows in B.
    input(a).await.send_keys("Added in A").await.expect("type");
    let sent = now_ms(a).await;
    input(a).await.send_keys(ENTER).await.expect("press Enter");
    delays.push((
        "an add, A to B",
        delay_until(b, "Added in A|false", sent).await,
    ));

    // Done in B: shows in A.
    let sent = now_ms(b).await;
    click_in_row(b, "Added in A", ".check").await;
    delays.push((
        "a toggle, B to A",
        delay_until(a, "Added in A|true", sent).await,
    ));

    // Another program imports two todos through the server (this test's
    // process, over plain HTTP): both pages show them.
    let sent = now_ms(a).await;
    let imported = call(
        server.addr(),
        "import_todos",
        &[("text", "Imported one\n\nImported two\n")],
    );
    assert_eq!(imported, json!(2), "two non-blank lines, two todos");
    delays.push((
        "an import, to A",
        delay_until(a, "Imported two|false", sent).await,
    ));
    delays.push((
        "an import, to B",
        delay_until(b, "Imported two|false", sent).await,
    ));

    // Deleted in A: goes from B.
    let sent = now_ms(a).await;
    click_in_row(a, "Imported one", ".delete").await;
    delays.push((
        "a delete, A to B",
        delay_until(b, "gone|Imported one|false", sent).await,
    ));

    let want = [("Added in A", true), ("Imported two", false)];
    for c in [a, b] {
        expect_page(c, &want, [3, 1, 1, 1]).await;
        let marker = c.execute("return window.__noReload || null;", vec![]).await;
        assert_eq!(marker.unwrap(), json!("same page"), "no page was reloaded");
    }
    // The feed of the other page shows the changes too.
    let want = [
        "deleted “Imported one”",
        "added “Imported two”",
        "added “Imported one”",
        "completed “Added in A”",
        "added “Added in A”",
    ];
    expect_feed(b, &want).await;
    for (what, delay) in &delays {
        println!("live update delay, {what}: {} ms", delay.as_millis());
    }
    for (what, delay) in delays {
        assert!(delay < LIVE_LIMIT, "{what} took {delay:?}");
    }
    let _ = a.clone().close().await;
    let _ = b.clone().close().await;
}

/// The texts of the elements `css` matches, in order.
async fn texts(c: &Client, css: &str) -> Result<Vec<String>, CmdError> {
    let mut texts = Vec::new();
    for element in c.find_all(Locator::Css(css)).await? {
        texts.push(element.text().await?);
    }
    Ok(texts)
}

/// Waits until the activity feed shows exactly these lines.
async fn expect_feed<S: AsRef<str>>(c: &Client, want: &[S]) {
    let want: Vec<&str> = want.iter().map(AsRef::as_ref).collect();
    eventually("the activity feed", || async {
        let got = texts(c, ".feed-list .entry .what").await.map_err(seen)?;
        if got == want {
            Ok(())
        } else {
            Err(format!("{got:?}, want {want:?}"))
        }
    })
    .await
}

/// What a person did, for the model that the time-travel test checks the
/// page against.
#[derive(Clone, Copy)]
enum Step {
    Add(&'static str),
    Toggle(&'static str),
    Delete(&'static str),
}

/// The list and the statistics after each step, folded in memory.
#[derive(Clone, Default)]
struct Model {
    rows: Vec<(String, bool)>,
    created: u64,
    deleted: u64,
}

impl Model {
    fn apply(&mut self, step: Step) -> String {
        match step {
            Step::Add(text) => {
                self.rows.push((text.to_owned(), false));
                self.created += 1;
                format!("added “{text}”")
            }
            Step::Toggle(text) => {
                let row = self
                    .rows
                    .iter_mut()
                    .find(|(t, _)| t == text)
                    .expect("a row");
                row.1 = !row.1;
                format!("{} “{text}”", if row.1 { "completed" } else { "reopened" })
            }
            Step::Delete(text) => {
                self.rows.retain(|(t, _)| t != text);
                self.deleted += 1;
                format!("deleted “{text}”")
            }
        }
    }

    fn stats(&self) -> [u64; 4] {
        let done = self.rows.iter().filter(|(_, done)| *done).count() as u64;
        let live = self.rows.len() as u64;
        [self.created, live - done, done, self.deleted]
    }

    fn rows(&self) -> Vec<(&str, bool)> {
        self.rows.iter().map(|(t, d)| (t.as_str(), *d)).collect()
    }
}

/// Waits until the page shows the state of `model` in the past, read-only,
/// with the banner naming change `seq`.
async fn expect_past(c: &Client, model: &Model, seq: u64) {
    eventually(&format!("the banner of change {seq}"), || async {
        let banner = c.find(Locator::Id("past-banner")).await.map_err(seen)?;
        let at = banner.attr("data-at").await.map_err(seen)?;
        if at == Some(seq.to_string()) {
            Ok(())
        } else {
            Err(format!("{at:?}"))
        }
    })
    .await;
    expect_page(c, &model.rows(), model.stats()).await;
    assert!(!has(c, ".add-form").await, "no form in the past");
    assert!(!has(c, ".todos button").await, "no buttons in the past");
}

/// The time-travel control shows the list and the statistics as they were
/// after any event, including events already rotated into the archive,
/// read-only, with a way back to now; with JavaScript (without reloading)
/// and without. The activity feed pages back through the whole history.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn time_travel_shows_the_past_across_a_rotation() {
    bounded(time_travel_shows_the_past_across_a_rotation_steps()).await;
}

async fn time_travel_shows_the_past_across_a_rotation_steps() {
    use Step::{Add, Delete, Toggle};
    let data = tempfile::tempdir().unwrap();
    let server = Server::start_with(data.path(), &[("TODO_MAX_LOG_SIZE", "1500")]);
    let steps = [
        Add("Buy milk"),
        Add("Call mum"),
        Toggle("Buy milk"),
        Add("Pay rent"),
        Delete("Call mum"),
        Add("Water the plants"),
        Toggle("Pay rent"),
        Toggle("Buy milk"),
        Add("Book the dentist"),
        Add("Renew passport"),
        Toggle("Water the plants"),
        Delete("Buy milk"),
        Add("Send the report"),
        Toggle("Renew passport"),
        Delete("Pay rent"),
        Add("Fix the bike"),
    ];
    let mut model = Model::default();
    let mut states = Vec::new();
    let mut described = Vec::new();
    for step in steps {
        match step {
            Add(text) => {
                call(server.addr(), "add_todo", &[("text", text)]);
            }
            Toggle(text) => {
                let id = todo_id(server.addr(), text);
                call(server.addr(), "toggle_todo", &[("id", &id)]);
            }
            Delete(text) => {
                let id = todo_id(server.addr(), text);
                call(server.addr(), "delete_todo", &[("id", &id)]);
            }
        }
        described.push(model.apply(step));
        states.push(model.clone());
    }
    let last = steps.len() as u64 - 1;
    // The first five events are in the archive by now.
    assert!(data.path().join("archive.jsonl.zst").exists(), "rotated");
    let active = std::fs::read_to_string(data.path().join("app.jsonl")).unwrap();
    assert!(
        active.lines().count() < steps.len() - 5,
        "events 0 to 4 were rotated into the archive: {} lines active",
        active.lines().count()
    );
    let state = |seq: u64| &states[seq as usize];

    let driver = Driver::start();
    let (with_js, without_js) = tokio::join!(driver.browser(true), driver.browser(false));

    // With JavaScript: open in the past, step, slide, follow a feed entry,
    // go back to now, all without a reload.
    let c = &with_js.client;
    c.goto(&format!("{}/?at=1", server.url)).await.unwrap();
    eventually("the page to hydrate", || async {
        match c
            .find_all(Locator::Css(".page[data-hydrated='true']"))
            .await
        {
            Ok(found) if !found.is_empty() => Ok(()),
            Ok(_) => Err("not hydrated yet".into()),
            Err(e) => Err(seen(e)),
        }
    })
    .await;
    c.execute("window.__noReload = 'same page'; return null;", vec![])
        .await
        .unwrap();
    expect_past(c, state(1), 1).await;
    click(c, ".step.later").await;
    expect_past(c, state(2), 2).await;
    click(c, ".step.earlier").await;
    expect_past(c, state(1), 1).await;
    click(c, ".step.earlier").await;
    expect_past(c, state(0), 0).await;
    // The slider, let go at event 9 (after the rotation).
    c.execute(
        "const s = document.getElementById('travel-at'); s.value = '9'; \
         s.dispatchEvent(new Event('change', {bubbles: true})); return null;",
        vec![],
    )
    .await
    .unwrap();
    expect_past(c, state(9), 9).await;
    // A line of the feed: the state right after that change.
    click(c, ".feed-list .entry[data-seq='7'] .what").await;
    expect_past(c, state(7), 7).await;
    click(c, ".back-to-now").await;
    expect_page(c, &state(last).rows(), state(last).stats()).await;
    assert!(!has(c, "#past-banner").await, "now, no banner");
    assert!(has(c, ".add-form").await, "now, the form is back");
    let marker = c.execute("return window.__noReload || null;", vec![]).await;
    assert_eq!(marker.unwrap(), json!("same page"), "never reloaded");
    // The latest page of the feed, newest first.
    let want: Vec<&str> = described
        .iter()
        .rev()
        .take(10)
        .map(String::as_str)
        .collect();
    expect_feed(c, &want).await;

    // Without JavaScript: the same by links and a GET form.
    let c = &without_js.client;
    c.goto(&format!("{}/?at=3", server.url)).await.unwrap();
    expect_past(c, state(3), 3).await;
    click(c, ".step.earlier").await;
    expect_past(c, state(2), 2).await;
    click(c, ".step.later").await;
    expect_past(c, state(3), 3).await;
    click(c, ".step.later").await;
    expect_past(c, state(4), 4).await;
    // The slider, then "Show": WebDriver sets the value as a hand would.
    c.execute(
        "document.getElementById('travel-at').value = '12'; return null;",
        vec![],
    )
    .await
    .unwrap();
    click(c, ".travel-go").await;
    expect_past(c, state(12), 12).await;
    assert_no_internals(c, data.path()).await;
    click(c, ".back-to-now").await;
    expect_page(c, &state(last).rows(), state(last).stats()).await;
    assert!(has(c, ".add-form").await);

    // The feed, paged back to the first change through the archive.
    let mut feed = Vec::new();
    loop {
        feed.extend(texts(c, ".feed-list .entry .what").await.unwrap());
        if !has(c, ".pager .older").await {
            break;
        }
        click(c, ".pager .older").await;
    }
    let want: Vec<String> = described.iter().rev().cloned().collect();
    assert_eq!(feed, want, "every change once, newest first");
    click(c, ".pager .newer").await;
    expect_feed(c, &want[..10]).await;

    // A change that does not exist yet gets a message and a way back.
    c.goto(&format!("{}/?at=999", server.url)).await.unwrap();
    expect_message(c, "travel-error", "There is no change number 1000 yet").await;
    assert_no_internals(c, data.path()).await;
    for function in ["get_timeline", "get_todos", "get_stats"] {
        let (status, body) = http_post(
            server.addr(),
            &format!("/api/{function}"),
            &[("at", &u64::MAX.to_string())],
        );
        assert_eq!(status, 500, "{body}");
        assert!(
            body.contains("no change number 18446744073709551615 yet"),
            "{body}"
        );
    }

    let _ = with_js.client.close().await;
    let _ = without_js.client.close().await;
}

/// While the log cannot be written (a file-size limit set on the running
/// server makes every append fail, as a full disk would), the list, the
/// statistics, the feed and time travel keep loading, and writes get a
/// message saying to try again, and write nothing; once the limit is
/// lifted, the next write works, without restarting the server, and every
/// acknowledged todo is there, also after a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storage_fault_keeps_reads_working_and_heals_without_restart() {
    bounded(a_storage_fault_keeps_reads_working_and_heals_without_restart_steps()).await;
}

async fn a_storage_fault_keeps_reads_working_and_heals_without_restart_steps() {
    let data = tempfile::tempdir().unwrap();
    let server_log = tempfile::NamedTempFile::new().unwrap();
    let mut server = Server::start_ignoring_file_size_signal(data.path(), server_log.path());
    let driver = Driver::start();
    let (with_js, without_js) = tokio::join!(driver.browser(true), driver.browser(false));
    let c = &with_js.client;
    open(c, &server.url, true).await;
    add_with_enter(c, "Saved before the fault").await;
    expect_page(c, &[("Saved before the fault", false)], [1, 1, 0, 0]).await;
    add_with_enter(c, "Also saved before").await;
    click_in_row(c, "Also saved before", ".check").await;
    let before = [
        ("Saved before the fault", false),
        ("Also saved before", true),
    ];
    expect_page(c, &before, [2, 1, 1, 0]).await;

    // The fault: no file may grow past what app.jsonl holds now.
    let len = log_len(data.path());
    server.limit_file_size(Some(len));

    add_with_enter(c, "Typed during the fault").await;
    expect_message(c, "add-error", "Could not save, try again").await;
    expect_box(c, "Typed during the fault").await;
    click_in_row(c, "Saved before the fault", ".check").await;
    expect_message(c, "row-error", "Could not save, try again").await;
    expect_page(c, &before, [2, 1, 1, 0]).await;
    assert_no_internals(c, data.path()).await;
    // Trying again while the fault lasts fails the same way.
    input(c).await.send_keys(ENTER).await.expect("press Enter");
    expect_message(c, "add-error", "Could not save, try again").await;
    assert_eq!(log_len(data.path()), len, "nothing half-written");

    // Reads do not depend on the failed writes: a reload shows the list,
    // the statistics and the feed, and the past still shows.
    c.refresh().await.unwrap();
    expect_page(c, &before, [2, 1, 1, 0]).await;
    expect_feed(
        c,
        &[
            "completed “Also saved before”",
            "added “Also saved before”",
            "added “Saved before the fault”",
        ],
    )
    .await;
    assert_no_internals(c, data.path()).await;
    c.goto(&format!("{}/?at=0", server.url)).await.unwrap();
    expect_page(c, &[("Saved before the fault", false)], [1, 1, 0, 0]).await;
    assert_eq!(
        todo_texts(server.addr()),
        ["Saved before the fault", "Also saved before"]
    );

    // Without JavaScript, a form post gets the message too.
    let plain = &without_js.client;
    open(plain, &server.url, false).await;
    expect_page(plain, &before, [2, 1, 1, 0]).await;
    add_with_enter(plain, "Posted during the fault").await;
    expect_message(plain, "add-error", "Could not save, try again").await;
    expect_page(plain, &before, [2, 1, 1, 0]).await;
    assert_no_internals(plain, data.path()).await;
    assert_eq!(log_len(data.path()), len, "nothing half-written");

    // The fault clears: the next write works, in the same server process.
    server.limit_file_size(None);
    open(c, &server.url, true).await;
    add_with_enter(c, "Saved after the fault").await;
    click_in_row(c, "Saved before the fault", ".check").await;
    let after = [
        ("Saved before the fault", true),
        ("Also saved before", true),
        ("Saved after the fault", false),
    ];
    expect_page(c, &after, [3, 1, 2, 0]).await;
    assert!(!has(c, "#add-error").await && !has(c, "#row-error").await);
    assert!(server.is_running(), "the same server, never restarted");
    // The details went to the server's log (as far as the limit let it
    // grow), not to the pages.
    let details = std::fs::read_to_string(server_log.path()).unwrap();
    assert!(details.contains("File too large"), "{details}");
    add_with_enter(plain, "Posted after the fault").await;
    let after = [
        after[0],
        after[1],
        after[2],
        ("Posted after the fault", false),
    ];
    expect_page(plain, &after, [4, 2, 2, 0]).await;

    // Every acknowledged todo is there, nothing of the failed writes is,
    // and every line of the log is a whole event, also after a hard kill.
    let events = std::fs::read_to_string(data.path().join("app.jsonl")).unwrap();
    assert!(events.ends_with('\n'), "no partial line");
    for line in events.lines() {
        serde_json::from_str::<Value>(line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
    }
    let want: Vec<&str> = after.iter().map(|(text, _)| *text).collect();
    assert_eq!(todo_texts(server.addr()), want);
    drop(server);
    let server = Server::start(data.path());
    assert_eq!(todo_texts(server.addr()), want);
    open(c, &server.url, true).await;
    expect_page(c, &after, [4, 2, 2, 0]).await;

    let _ = with_js.client.close().await;
    let _ = without_js.client.close().await;
}
