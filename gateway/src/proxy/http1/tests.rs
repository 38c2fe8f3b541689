//! The HTTP/1.1 server over real sockets: a proxy listener in front of the
//! echo server, driven by raw bytes, then HTTP/2 through hyper's client.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use schemas::config::Config;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::pdk::PluginEnv;
use crate::proxy::{serve, Proxy, ProxySettings};
use crate::snapshot::tests::{route, service};
use crate::snapshot::{Snapshot, SnapshotHandle};

/// A proxy routing `/` to an echo server; both stop when dropped.
struct Harness {
    proxy_addr: SocketAddr,
    stop_proxy: Option<oneshot::Sender<()>>,
    proxy_task: Option<JoinHandle<()>>,
    _stop_echo: oneshot::Sender<()>,
}

impl Harness {
    async fn start(settings: ProxySettings) -> Harness {
        let (stop_echo, echo_stopped) = oneshot::channel::<()>();
        let echo_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let echo_addr = echo_listener.local_addr().unwrap();
        tokio::spawn(crate::echo::serve(echo_listener, async {
            let _ = echo_stopped.await;
        }));
        let service_id = Uuid::new_v4();
        let mut echo = service(service_id);
        echo["port"] = json!(echo_addr.port());
        let mut anything = route(Uuid::new_v4(), Some(service_id), "/anything");
        anything["strip_path"] = json!(false);
        let config = Config {
            services: vec![echo],
            routes: vec![anything],
            ..Config::default()
        };
        let snapshot = Snapshot::build(&config, &PluginEnv::default()).unwrap();
        let handle = Arc::new(SnapshotHandle::new(snapshot));
        let proxy = Arc::new(Proxy::new(handle, settings));
        let (stop_proxy, proxy_stopped) = oneshot::channel::<()>();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let proxy_addr = listener.local_addr().unwrap();
        let proxy_task = tokio::spawn(serve(listener, None, proxy, async {
            let _ = proxy_stopped.await;
        }));
        Harness {
            proxy_addr,
            stop_proxy: Some(stop_proxy),
            proxy_task: Some(proxy_task),
            _stop_echo: stop_echo,
        }
    }

    async fn connect(&self) -> Client {
        Client {
            stream: TcpStream::connect(self.proxy_addr).await.unwrap(),
            buffer: Vec::new(),
        }
    }
}

fn settings() -> ProxySettings {
    ProxySettings {
        max_header_bytes: 8192,
        workers: 0,
        ..ProxySettings::default()
    }
}

/// A raw HTTP/1.1 client connection.
struct Client {
    stream: TcpStream,
    buffer: Vec<u8>,
}

/// A response: status, head text, body.
#[derive(Debug)]
struct Answer {
    status: u16,
    head: String,
    body: Vec<u8>,
}

impl Answer {
    /// The message of Kong's `text/plain` error page (no header of the
    /// request was read: `error_default_type`).
    fn plain_message(&self) -> String {
        assert!(
            self.has("content-type: text/plain; charset=utf-8"),
            "{}",
            self.head
        );
        let text = String::from_utf8_lossy(&self.body).into_owned();
        let (message, rest) = text.split_once('\n').expect("two lines");
        assert!(rest.starts_with("request_id: "), "{text:?}");
        message.to_owned()
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&self.body)))
    }

    fn has(&self, line: &str) -> bool {
        self.head
            .to_ascii_lowercase()
            .contains(&format!("\r\n{line}\r\n"))
    }
}

impl Client {
    async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
    }

    /// Reads one response: `None` if the connection closes first.
    async fn answer(&mut self) -> Option<Answer> {
        self.read_answer(false).await
    }

    /// Reads one response to a `HEAD` request (no body whatever its head
    /// says).
    async fn answer_to_head(&mut self) -> Option<Answer> {
        self.read_answer(true).await
    }

    async fn read_answer(&mut self, to_head: bool) -> Option<Answer> {
        tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                if let Some(answer) = self.take_answer(to_head) {
                    return Some(answer);
                }
                let mut chunk = [0u8; 16 * 1024];
                match self.stream.read(&mut chunk).await {
                    Ok(0) | Err(_) => return None,
                    Ok(read) => self.buffer.extend_from_slice(&chunk[..read]),
                }
            }
        })
        .await
        .expect("an answer or a close within 10 s")
    }

    /// Whether the server closes the connection (within 10 s) without
    /// sending anything more.
    async fn closes(&mut self) -> bool {
        let mut chunk = [0u8; 1024];
        let read = tokio::time::timeout(Duration::from_secs(10), self.stream.read(&mut chunk))
            .await
            .expect("a close within 10 s");
        matches!(read, Ok(0) | Err(_)) && self.buffer.is_empty()
    }

    /// A complete response at the front of the buffer, taken off it.
    fn take_answer(&mut self, to_head: bool) -> Option<Answer> {
        let head_end = self
            .buffer
            .windows(4)
            .position(|window| window == b"\r\n\r\n")?
            + 4;
        let head = String::from_utf8_lossy(&self.buffer[..head_end]).into_owned();
        let status: u16 = head.split(' ').nth(1)?.parse().ok()?;
        let lower = head.to_ascii_lowercase();
        let header = |name: &str| {
            lower
                .lines()
                .find_map(|line| line.strip_prefix(name))
                .map(|value| value.trim().to_owned())
        };
        let rest = &self.buffer[head_end..];
        let (body, used) = if to_head || status == 100 || status == 204 || status == 304 {
            (Vec::new(), 0)
        } else if let Some(length) = header("content-length:") {
            let length: usize = length.parse().ok()?;
            if rest.len() < length {
                return None;
            }
            (rest[..length].to_vec(), length)
        } else if header("transfer-encoding:").is_some() {
            dechunk(rest)?
        } else {
            (Vec::new(), 0)
        };
        self.buffer.drain(..head_end + used);
        Some(Answer { status, head, body })
    }
}

/// The body of a complete chunked message at the start of `wire`, and how
/// many bytes it took.
fn dechunk(wire: &[u8]) -> Option<(Vec<u8>, usize)> {
    let mut body = Vec::new();
    let mut at = 0;
    loop {
        let line_end = wire[at..].windows(2).position(|window| window == b"\r\n")? + at;
        let size =
            usize::from_str_radix(std::str::from_utf8(&wire[at..line_end]).ok()?, 16).ok()?;
        at = line_end + 2;
        if size == 0 {
            return (wire.len() >= at + 2).then_some((body, at + 2));
        }
        if wire.len() < at + size + 2 {
            return None;
        }
        body.extend_from_slice(&wire[at..at + size]);
        at += size + 2;
    }
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order_on_one_connection() {
    let harness = Harness::start(settings()).await;
    let mut client = harness.connect().await;
    client
        .send(b"GET /anything/1 HTTP/1.1\r\nHost: a\r\n\r\nGET /anything/2 HTTP/1.1\r\nHost: a\r\n\r\n")
        .await;
    for path in ["/anything/1", "/anything/2"] {
        let answer = client.answer().await.expect("an answer");
        assert_eq!(answer.status, 200, "{answer:?}");
        assert_eq!(answer.json()["path"], path);
        assert!(answer.head.contains("\r\ndate: "), "{}", answer.head);
    }
    client
        .send(b"GET /nowhere HTTP/1.1\r\nHost: a\r\n\r\n")
        .await;
    assert_eq!(client.answer().await.unwrap().status, 404);
}

#[tokio::test]
async fn an_oversized_request_line_gets_414_even_after_a_first_request() {
    let harness = Harness::start(settings()).await;
    let mut client = harness.connect().await;
    client
        .send(b"GET /anything HTTP/1.1\r\nHost: a\r\n\r\n")
        .await;
    assert_eq!(client.answer().await.unwrap().status, 200);
    let long = format!("GET /{} HTTP/1.1\r\nHost: a\r\n\r\n", "a".repeat(20_000));
    client.send(long.as_bytes()).await;
    let answer = client.answer().await.expect("an answer");
    assert_eq!(answer.status, 414, "{answer:?}");
    assert_eq!(answer.plain_message(), "URI too long");
    assert!(answer.has("connection: close"), "{}", answer.head);
    assert!(answer.has("server: kong/3.10.0"), "{}", answer.head);
    assert!(client.closes().await);
}

#[tokio::test]
async fn oversized_and_malformed_heads_get_431_and_400() {
    let harness = Harness::start(settings()).await;
    let huge = format!(
        "GET /anything HTTP/1.1\r\nHost: a\r\nX-Huge: {}\r\n\r\n",
        "h".repeat(10_000)
    );
    for (request, status, message) in [
        (huge.as_bytes(), 431, "Request header fields too large"),
        (
            &b"G(T / HTTP/1.1\r\nHost: a\r\n\r\n"[..],
            400,
            "Bad request",
        ),
        (
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1x\r\n\r\n",
            400,
            "Bad request",
        ),
    ] {
        let mut client = harness.connect().await;
        client.send(request).await;
        let answer = client.answer().await.expect("an answer");
        assert_eq!(answer.status, status, "{answer:?}");
        assert_eq!(answer.plain_message(), message);
        assert!(answer.has("connection: close"), "{}", answer.head);
        assert!(client.closes().await);
    }
}

#[tokio::test]
async fn chunked_and_sized_bodies_reach_the_upstream() {
    let harness = Harness::start(settings()).await;
    let mut client = harness.connect().await;
    client
        .send(b"POST /anything HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
        .await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    client.send(b"6;x=y\r\n world\r\n0\r\n\r\n").await;
    let answer = client.answer().await.expect("an answer");
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(answer.json()["data"], "hello world");
    client
        .send(b"PUT /anything HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabcGET /anything/next HTTP/1.1\r\nHost: a\r\n\r\n")
        .await;
    assert_eq!(client.answer().await.unwrap().json()["data"], "abc");
    assert_eq!(
        client.answer().await.unwrap().json()["path"],
        "/anything/next"
    );
}

#[tokio::test]
async fn a_broken_chunked_body_gets_400_and_a_close() {
    let harness = Harness::start(settings()).await;
    let mut client = harness.connect().await;
    client
        .send(b"POST /anything HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\n\r\n")
        .await;
    let answer = client.answer().await.expect("an answer");
    assert_eq!(answer.status, 400, "{answer:?}");
    assert!(client.closes().await);
}

#[tokio::test]
async fn expect_100_continue_is_answered_when_the_body_is_wanted() {
    let harness = Harness::start(settings()).await;
    let mut client = harness.connect().await;
    client
        .send(b"POST /anything HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n")
        .await;
    let interim = client.answer().await.expect("100 Continue");
    assert_eq!(interim.status, 100, "{interim:?}");
    client.send(b"data").await;
    let answer = client.answer().await.expect("an answer");
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(answer.json()["data"], "data");

    // Refused before the body is wanted: no 100, and the connection closes
    // (the client may never send the body).
    let mut client = harness.connect().await;
    client
        .send(b"POST /nowhere HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n")
        .await;
    let answer = client.answer().await.expect("an answer");
    assert_eq!(answer.status, 404, "{answer:?}");
    assert!(client.closes().await);
}

#[tokio::test]
async fn an_unread_small_body_is_drained_and_a_large_one_closes() {
    let harness = Harness::start(settings()).await;
    let mut client = harness.connect().await;
    client
        .send(b"POST /nowhere HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhelloGET /anything HTTP/1.1\r\nHost: a\r\n\r\n")
        .await;
    assert_eq!(client.answer().await.unwrap().status, 404);
    assert_eq!(client.answer().await.unwrap().status, 200);

    let mut client = harness.connect().await;
    client
        .send(b"POST /nowhere HTTP/1.1\r\nHost: a\r\nContent-Length: 10000000\r\n\r\nstart")
        .await;
    let answer = client.answer().await.expect("an answer");
    assert_eq!(answer.status, 404);
    assert!(answer.has("connection: close") || client.closes().await);
}

#[tokio::test]
async fn head_http_1_0_and_connection_close() {
    let harness = Harness::start(settings()).await;
    let mut client = harness.connect().await;
    client
        .send(b"HEAD /anything HTTP/1.1\r\nHost: a\r\n\r\n")
        .await;
    let answer = client.answer_to_head().await.expect("an answer");
    assert_eq!(answer.status, 200);
    assert!(
        answer.has("content-type: application/json"),
        "{}",
        answer.head
    );
    client
        .send(b"GET /anything HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        .await;
    let answer = client.answer().await.expect("an answer");
    assert!(answer.has("connection: close"), "{}", answer.head);
    assert!(client.closes().await);

    let mut client = harness.connect().await;
    client.send(b"GET /anything HTTP/1.0\r\n\r\n").await;
    let answer = client.answer().await.expect("an answer");
    assert!(
        answer.head.starts_with("HTTP/1.0 200 OK\r\n"),
        "{}",
        answer.head
    );
    assert!(client.closes().await);
}

#[tokio::test]
async fn idle_and_slow_connections_end_at_the_header_read_timeout() {
    let timeout = Duration::from_millis(300);
    let harness = Harness::start(ProxySettings {
        header_read_timeout: timeout,
        ..settings()
    })
    .await;
    // Slow: half a head, then nothing.
    let mut client = harness.connect().await;
    let started = Instant::now();
    client.send(b"GET /anything HTTP/1.1\r\n").await;
    assert!(client.closes().await);
    assert!(started.elapsed() >= timeout, "{:?}", started.elapsed());
    // Idle after a request.
    let mut client = harness.connect().await;
    client
        .send(b"GET /anything HTTP/1.1\r\nHost: a\r\n\r\n")
        .await;
    assert_eq!(client.answer().await.unwrap().status, 200);
    let idle_from = Instant::now();
    assert!(client.closes().await);
    assert!(idle_from.elapsed() >= timeout - Duration::from_millis(50));
}

#[tokio::test]
async fn http2_with_prior_knowledge_is_served_by_hyper() {
    let harness = Harness::start(settings()).await;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .http2_only(true)
        .build_http::<Full<Bytes>>();
    let uri = format!("http://{}/anything/h2", harness.proxy_addr);
    let response = client
        .request(http::Request::get(uri).body(Full::default()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.version(), http::Version::HTTP_2);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let echo: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(echo["path"], "/anything/h2");
}

#[tokio::test]
async fn shutdown_closes_idle_connections_and_serve_returns() {
    let mut harness = Harness::start(settings()).await;
    let mut client = harness.connect().await;
    client
        .send(b"GET /anything HTTP/1.1\r\nHost: a\r\n\r\n")
        .await;
    assert_eq!(client.answer().await.unwrap().status, 200);
    let started = Instant::now();
    drop(harness.stop_proxy.take());
    assert!(client.closes().await);
    let task = harness.proxy_task.take().unwrap();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("serve returns once the connections are closed")
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}
