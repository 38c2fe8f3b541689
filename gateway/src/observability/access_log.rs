//! Access logs: one line per request, in nginx's log formats as Kong
//! configures them, written by a thread of their own.
//!
//! - Formats ([`Format`]): the proxy's is Kong's `kong_log_format`
//!   (`kong/templates/nginx_kong.lua`):
//!   `$remote_addr - $remote_user [$time_local] "$request" $status
//!   $body_bytes_sent "$http_referer" "$http_user_agent" kong_request_id:
//!   "$kong_request_id"`; the Admin API's is nginx's `combined`, the same
//!   without the request id (Kong's admin server sets no format).
//!   Variable values are escaped as nginx's default `escape=default`
//!   does: `"`, `\`, bytes below 0x20 and above 0x7e become `\xHH`; an
//!   empty value is `-`. `$time_local` is written in UTC (`+0000`).
//! - The request path pays for one [`LineStart`] (the line's text, built
//!   when the request head is known) and, once the response is done, one
//!   non-blocking push of it into a bounded queue ([`AccessLog::finish`]).
//!   When the queue is full the line is dropped and counted
//!   (`gateway_access_log_dropped_total` on `/metrics`); a request never
//!   waits for the log.
//! - The writer thread adds the time, status and size, writes lines in
//!   batches through a buffer, flushes whenever the queue runs empty, and
//!   reopens the file when asked ([`AccessLog::reopen`], on SIGUSR1, as
//!   nginx reopens its logs for logrotate).

use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use http::header::{AUTHORIZATION, REFERER, USER_AGENT};
use http::Version;

/// Lines the queue holds before new ones are dropped.
pub const QUEUE_LINES: usize = 16 * 1024;

/// How often the writer looks at its flags when no line comes.
const IDLE_POLL: Duration = Duration::from_millis(100);

/// The least time between two warnings about dropped lines.
const DROP_WARNING_EVERY: Duration = Duration::from_secs(10);

/// Where a log goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// The process's standard output.
    Stdout,
    /// A file, created if missing, appended to.
    File(PathBuf),
}

impl Target {
    /// `stdout`, `off` (`None`) or a path.
    pub fn parse(value: &str) -> Option<Target> {
        match value {
            "off" => None,
            "stdout" => Some(Target::Stdout),
            path => Some(Target::File(PathBuf::from(path))),
        }
    }

    fn open(&self) -> io::Result<Box<dyn Write + Send>> {
        match self {
            Target::Stdout => Ok(Box::new(io::stdout())),
            Target::File(path) => {
                let file: File = OpenOptions::new().create(true).append(true).open(path)?;
                Ok(Box::new(file))
            }
        }
    }
}

/// Which line format a log writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Kong's `kong_log_format` (the proxy).
    Kong,
    /// nginx's `combined` (the Admin API).
    Combined,
}

/// What a log counted.
#[derive(Debug, Default)]
pub struct AccessLogStats {
    dropped: AtomicU64,
}

impl AccessLogStats {
    /// Lines dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// The beginning of one line: everything known from the request, with
/// the places where the time and the status go.
#[derive(Debug)]
pub struct LineStart {
    text: String,
    /// Where `$time_local` goes (between `[` and `]`).
    time_at: usize,
    /// Where `$status $body_bytes_sent` goes.
    status_at: usize,
}

/// One finished line, on its way to the writer.
struct Line {
    start: LineStart,
    second: u64,
    status: u16,
    body_bytes: u64,
}

/// One access log: its queue, its writer thread, its counters.
pub struct AccessLog {
    format: Format,
    sender: SyncSender<Line>,
    stats: Arc<AccessLogStats>,
    flags: Arc<Flags>,
    writer: Mutex<Option<JoinHandle<()>>>,
}

/// What the writer is asked to do besides writing.
#[derive(Default)]
struct Flags {
    reopen: AtomicBool,
    stop: AtomicBool,
}

impl AccessLog {
    /// Opens `target` (so that an unwritable path fails the start) and
    /// starts the writer thread `name`.
    pub fn open(name: &str, target: Target, format: Format) -> io::Result<AccessLog> {
        AccessLog::with_capacity(name, target, format, QUEUE_LINES)
    }

    fn with_capacity(
        name: &str,
        target: Target,
        format: Format,
        lines: usize,
    ) -> io::Result<AccessLog> {
        let out = target.open()?;
        let (sender, receiver) = mpsc::sync_channel(lines);
        let stats = Arc::new(AccessLogStats::default());
        let flags = Arc::new(Flags::default());
        let writer = Writer {
            target,
            out: BufWriter::with_capacity(64 * 1024, out),
            receiver,
            stats: Arc::clone(&stats),
            flags: Arc::clone(&flags),
            clock: Clock::default(),
            warned: (0, None),
        };
        let thread = std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || writer.run())?;
        Ok(AccessLog {
            format,
            sender,
            stats,
            flags,
            writer: Mutex::new(Some(thread)),
        })
    }

    /// The counters.
    pub fn stats(&self) -> &Arc<AccessLogStats> {
        &self.stats
    }

    /// The line of a request from `client` with this head.
    pub fn begin(
        &self,
        client: IpAddr,
        request: &http::request::Parts,
        request_id: &str,
    ) -> LineStart {
        let mut text = String::with_capacity(256);
        let _ = write!(text, "{client} - ");
        match remote_user(&request.headers) {
            Some(user) => push_value(&mut text, &user),
            None => text.push('-'),
        }
        text.push_str(" [");
        let time_at = text.len();
        text.push_str("] \"");
        push_request_line(&mut text, request);
        text.push_str("\" ");
        let status_at = text.len();
        text.push_str(" \"");
        push_value(&mut text, header_bytes(&request.headers, REFERER));
        text.push_str("\" \"");
        push_value(&mut text, header_bytes(&request.headers, USER_AGENT));
        text.push('"');
        if self.format == Format::Kong {
            text.push_str(" kong_request_id: \"");
            push_value(&mut text, request_id.as_bytes());
            text.push('"');
        }
        text.push('\n');
        LineStart {
            text,
            time_at,
            status_at,
        }
    }

    /// Queues the finished line; drops it (and counts it) when the queue
    /// is full. Never blocks.
    pub fn finish(&self, start: LineStart, status: u16, body_bytes: u64) {
        let second = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.as_secs());
        let line = Line {
            start,
            second,
            status,
            body_bytes,
        };
        match self.sender.try_send(line) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.stats.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Asks the writer to reopen the file (after the lines queued so far).
    pub fn reopen(&self) {
        self.flags.reopen.store(true, Ordering::Relaxed);
    }

    /// Writes what is queued, flushes and stops the writer; later lines
    /// are dropped.
    pub fn close(&self) {
        self.flags.stop.store(true, Ordering::Relaxed);
        let thread = self
            .writer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(thread) = thread {
            let _ = thread.join();
        }
    }
}

impl Drop for AccessLog {
    fn drop(&mut self) {
        self.close();
    }
}

/// The writer thread's state.
struct Writer {
    target: Target,
    out: BufWriter<Box<dyn Write + Send>>,
    receiver: Receiver<Line>,
    stats: Arc<AccessLogStats>,
    flags: Arc<Flags>,
    clock: Clock,
    /// Dropped lines at the last warning, and when it was.
    warned: (u64, Option<Instant>),
}

impl Writer {
    fn run(mut self) {
        loop {
            let received = self.receiver.recv_timeout(IDLE_POLL);
            // A reopen asked for before these lines came applies to them.
            if self.flags.reopen.swap(false, Ordering::Relaxed) {
                self.reopen();
            }
            match received {
                Ok(line) => {
                    self.write(&line);
                    while let Ok(line) = self.receiver.try_recv() {
                        self.write(&line);
                    }
                    self.flush();
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            self.warn_about_drops();
            if self.flags.stop.load(Ordering::Relaxed) {
                while let Ok(line) = self.receiver.try_recv() {
                    self.write(&line);
                }
                break;
            }
        }
        self.flush();
    }

    fn write(&mut self, line: &Line) {
        let LineStart {
            text,
            time_at,
            status_at,
        } = &line.start;
        let time = self.clock.time_local(line.second);
        let status = format!("{} {}", line.status, line.body_bytes);
        let text = text.as_bytes();
        let (before_time, rest) = text.split_at((*time_at).min(text.len()));
        let (before_status, after_status) =
            rest.split_at(status_at.saturating_sub(*time_at).min(rest.len()));
        let written = self
            .out
            .write_all(before_time)
            .and_then(|()| self.out.write_all(time.as_bytes()))
            .and_then(|()| self.out.write_all(before_status))
            .and_then(|()| self.out.write_all(status.as_bytes()))
            .and_then(|()| self.out.write_all(after_status));
        if let Err(error) = written {
            tracing::warn!(%error, "cannot write the access log");
        }
    }

    fn flush(&mut self) {
        if let Err(error) = self.out.flush() {
            tracing::warn!(%error, "cannot write the access log");
        }
    }

    fn reopen(&mut self) {
        self.flush();
        match self.target.open() {
            Ok(out) => self.out = BufWriter::with_capacity(64 * 1024, out),
            Err(error) => {
                tracing::warn!(%error, "cannot reopen the access log; writing to the old file")
            }
        }
    }

    fn warn_about_drops(&mut self) {
        let dropped = self.stats.dropped();
        let (warned_at_count, warned_at) = self.warned;
        let due = warned_at.is_none_or(|at| at.elapsed() >= DROP_WARNING_EVERY);
        if dropped > warned_at_count && due {
            tracing::warn!(dropped, "the access log cannot keep up: lines were dropped");
            self.warned = (dropped, Some(Instant::now()));
        }
    }
}

/// `$time_local` of the current second, formatted once per second.
#[derive(Default)]
struct Clock {
    second: u64,
    text: String,
}

impl Clock {
    /// `10/Oct/2000:13:55:36 +0000` for `second` (Unix time).
    fn time_local(&mut self, second: u64) -> &str {
        if self.text.is_empty() || self.second != second {
            self.second = second;
            self.text = time_local(UNIX_EPOCH + Duration::from_secs(second));
        }
        &self.text
    }
}

/// nginx's `$time_local` in UTC, from the IMF-fixdate
/// `Sun, 06 Nov 1994 08:49:37 GMT` → `06/Nov/1994:08:49:37 +0000`.
fn time_local(at: SystemTime) -> String {
    let imf = httpdate::fmt_http_date(at);
    let parts: Vec<&str> = imf.split(' ').collect();
    match parts.as_slice() {
        [_, day, month, year, clock, _] => format!("{day}/{month}/{year}:{clock} +0000"),
        _ => imf,
    }
}

/// `HTTP/1.1`, as nginx's `$request` ends.
fn version_text(version: Version) -> &'static str {
    match version {
        Version::HTTP_09 => "HTTP/0.9",
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_2 => "HTTP/2.0",
        Version::HTTP_3 => "HTTP/3.0",
        _ => "HTTP/1.1",
    }
}

/// nginx's `$request`: `GET /path?query HTTP/1.1`, escaped.
fn push_request_line(out: &mut String, request: &http::request::Parts) {
    push_escaped(out, request.method.as_str().as_bytes());
    out.push(' ');
    // An HTTP/1 absolute-form target is logged as sent; HTTP/2's
    // `:scheme` and `:authority` are not part of nginx's `$request`.
    if request.uri.scheme().is_some() && request.version != Version::HTTP_2 {
        push_escaped(out, request.uri.to_string().as_bytes());
    } else {
        let target = request
            .uri
            .path_and_query()
            .map_or("/", |path_and_query| path_and_query.as_str());
        push_escaped(out, target.as_bytes());
    }
    out.push(' ');
    out.push_str(version_text(request.version));
}

/// The first value of a header (`b""` when absent).
fn header_bytes(headers: &http::HeaderMap, name: http::header::HeaderName) -> &[u8] {
    headers.get(name).map_or(b"", |value| value.as_bytes())
}

/// nginx's `$remote_user`: the user of a `Basic` `Authorization` header.
fn remote_user(headers: &http::HeaderMap) -> Option<Vec<u8>> {
    let value = headers.get(AUTHORIZATION)?.as_bytes();
    let (scheme, encoded) = value.split_at_checked(6)?;
    if !scheme.eq_ignore_ascii_case(b"basic ") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim_ascii())
        .ok()?;
    let user = decoded.split(|&byte| byte == b':').next()?;
    Some(user.to_vec())
}

/// Appends a variable's value escaped, or `-` when it is empty.
fn push_value(out: &mut String, value: &[u8]) {
    if value.is_empty() {
        out.push('-');
    } else {
        push_escaped(out, value);
    }
}

/// Appends `bytes` escaped as nginx escapes logged values: `"`, `\`,
/// bytes below 0x20 and above 0x7e as `\xHH`.
fn push_escaped(out: &mut String, bytes: &[u8]) {
    for &byte in bytes {
        if byte == b'"' || byte == b'\\' || !(0x20..=0x7e).contains(&byte) {
            let _ = write!(out, "\\x{byte:02X}");
        } else {
            out.push(char::from(byte));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(request: http::Request<()>) -> http::request::Parts {
        request.into_parts().0
    }

    fn written(format: Format, request: http::request::Parts, status: u16, bytes: u64) -> String {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.log");
        let log = AccessLog::open("test-log", Target::File(path.clone()), format).unwrap();
        let start = log.begin("10.0.0.7".parse().unwrap(), &request, "0123abcd");
        log.finish(start, status, bytes);
        log.close();
        std::fs::read_to_string(path).unwrap()
    }

    #[test]
    fn lines_have_kongs_format() {
        let request = http::Request::get("/path?q=1")
            .header("user-agent", "curl/8.0")
            .header("authorization", "Basic YWxpY2U6c2VjcmV0")
            .body(())
            .unwrap();
        let line = written(Format::Kong, parts(request), 200, 512);
        let (before, after) = line.split_once(" [").unwrap();
        assert_eq!(before, "10.0.0.7 - alice");
        let (time, rest) = after.split_once("] ").unwrap();
        assert_eq!(time.len(), "10/Oct/2000:13:55:36 +0000".len(), "{time}");
        assert!(time.ends_with(" +0000"), "{time}");
        assert_eq!(
            rest,
            "\"GET /path?q=1 HTTP/1.1\" 200 512 \"-\" \"curl/8.0\" kong_request_id: \"0123abcd\"\n"
        );
    }

    #[test]
    fn hostile_values_are_escaped_as_nginx_does() {
        let request = http::Request::post("/x")
            .header(
                "user-agent",
                http::HeaderValue::from_bytes(b"a\"b\\c\xff d").unwrap(),
            )
            .header("referer", "r\"")
            .body(())
            .unwrap();
        let line = written(Format::Combined, parts(request), 401, 0);
        assert!(
            line.ends_with("\"POST /x HTTP/1.1\" 401 0 \"r\\x22\" \"a\\x22b\\x5Cc\\xFF d\"\n"),
            "{line}"
        );
        let request = http::Request::get("/")
            .header("user-agent", "a\"b\\c\tz \u{e9}")
            .body(())
            .unwrap();
        let line = written(Format::Combined, parts(request), 200, 1);
        assert!(
            line.ends_with("\"a\\x22b\\x5Cc\\x09z \\xC3\\xA9\"\n"),
            "{line}"
        );
    }

    #[test]
    fn time_local_is_nginxs() {
        let at = UNIX_EPOCH + Duration::from_secs(971_186_136);
        assert_eq!(time_local(at), "10/Oct/2000:13:55:36 +0000");
    }

    #[test]
    fn a_full_queue_drops_and_counts() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.log");
        let log = AccessLog::with_capacity("test-log", Target::File(path.clone()), Format::Kong, 1)
            .unwrap();
        let request = parts(http::Request::get("/").body(()).unwrap());
        for _ in 0..10_000 {
            let start = log.begin("127.0.0.1".parse().unwrap(), &request, "id");
            log.finish(start, 200, 0);
        }
        log.close();
        let lines = std::fs::read_to_string(path).unwrap().lines().count() as u64;
        assert!(log.stats().dropped() > 0, "a one-line queue overflows");
        assert_eq!(lines + log.stats().dropped(), 10_000);
    }
}
