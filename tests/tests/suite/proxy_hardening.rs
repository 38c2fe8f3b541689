//! Regression tests of issue 12 (proxy hardening): each sends exact bytes
//! on a raw socket to `gateway serve` and asserts what a raw recording
//! upstream received (or that nothing reached it), covering the whole
//! class of each defect, not just the example of the report.
//!
//! 1. Identity headers: a client can neither remove the headers key-auth
//!    sets (`Connection: X-Consumer-ID`) nor shadow them with underscore
//!    aliases (`X_Consumer_ID`), nor the `X-Forwarded-*`/`X-Real-IP` ones.
//! 2. `Content-Length` lists and repeats: 400 and nothing forwarded; an
//!    upstream's list reaches the client as the one value.
//! 3. Timeouts: a stalled request body gets 408 (`--client-body-timeout`),
//!    a client that reads nothing is cut off (`--send-timeout`), an
//!    upstream that reads nothing gets 504 (`write_timeout`); none of
//!    these upstream connections is used again.
//! 4. `Host` values that are not `host[:port]`: 400, nothing forwarded.
//! 5. An upstream response with both `Transfer-Encoding: chunked` and
//!    `Content-Length` reaches the client without the `Content-Length`.
//! 6. An absolute-form target's authority wins over `Host`; an HTTP/2
//!    `:authority` that differs from `host` gets 400.
//! 7. The `Proxy` request header is never forwarded (httpoxy).
//! 8. HTTP/2 `cookie` fields reach the upstream as one `Cookie`.
//! 9. Transfer codings other than `chunked`: 501, nothing forwarded.
//!
//! And Kong's details: `TRACE` → 405; `TE: trailers` forwarded and the
//! upstream's `Trailer` kept (dropped without it); a header line over
//! 8 KiB → 400 `Request header or cookie too large` while 150 headers are
//! proxied; `/request?` reaches the upstream as sent; a 502 carries
//! `X-Kong-Upstream-Latency` and `X-Kong-Proxy-Latency`.

use std::io::Write as _;
use std::net::SocketAddr;
use std::thread;
use std::time::{Duration, Instant};

use e2e::raw::{RawClient, RawReply, RawUpstream, RecordedRequest, Reply, RAW_TIMEOUT};
use e2e::{http_client, Gateway, GatewayOptions};
use reqwest::blocking::Client;
use serde_json::{json, Value};

/// A fixed small answer of the raw upstreams.
const OK: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

/// A gateway and an Admin API client.
struct Setup {
    gateway: Gateway,
    admin: Client,
}

impl Setup {
    fn start() -> Setup {
        Setup::start_with(&[])
    }

    /// With more `gateway serve` arguments.
    fn start_with(args: &[&str]) -> Setup {
        let gateway = Gateway::start(GatewayOptions {
            extra_args: args.iter().map(|arg| arg.to_string()).collect(),
            ..GatewayOptions::default()
        });
        Setup {
            gateway,
            admin: http_client(),
        }
    }

    /// `POST path` that must answer 201.
    #[track_caller]
    fn create(&self, path: &str, body: Value) -> Value {
        let response = self
            .admin
            .post(self.gateway.admin_url(path))
            .json(&body)
            .send()
            .expect("the Admin API answers");
        let status = response.status().as_u16();
        let answer: Value = response.json().unwrap_or(Value::Null);
        assert_eq!(status, 201, "POST {path} {body}\n{answer}");
        answer
    }

    /// A service `name` to `upstream` (with `service` fields) and a route
    /// on it (`route` fields).
    #[track_caller]
    fn service_and_route(&self, name: &str, upstream: &RawUpstream, service: Value, route: Value) {
        let mut body = json!({"name": name, "url": upstream.url("")});
        merge(&mut body, service);
        self.create("/services", body);
        self.create(&format!("/services/{name}/routes"), route);
    }

    fn proxy(&self) -> SocketAddr {
        self.gateway.proxy_addr()
    }

    /// One request on a fresh connection.
    fn exchange(&self, request: &[u8]) -> RawReply {
        RawClient::exchange(self.proxy(), request)
    }
}

/// Adds `extra`'s fields to `base`.
fn merge(base: &mut Value, extra: Value) {
    if let (Some(base), Value::Object(extra)) = (base.as_object_mut(), extra) {
        base.extend(extra);
    }
}

/// An upstream answering `200 ok`, behind a route on `/` of `setup`.
fn upstream_on_root(setup: &Setup) -> RawUpstream {
    let upstream = RawUpstream::start(Reply::Bytes(OK.to_vec()));
    setup.service_and_route("root", &upstream, json!({}), json!({"paths": ["/"]}));
    upstream
}

/// Waits a moment for anything in flight, then asserts the upstream got no
/// connection at all.
#[track_caller]
fn assert_nothing_forwarded(upstream: &RawUpstream, what: &str) {
    thread::sleep(Duration::from_millis(200));
    let recorded = upstream.recorded();
    assert!(
        recorded.is_empty(),
        "{what}: nothing may reach the upstream, it got:\n{}",
        recorded
            .iter()
            .map(|connection| connection.text())
            .collect::<Vec<_>>()
            .join("\n---\n")
    );
}

/// A refusal with `status`, Kong's JSON error and a closed connection.
#[track_caller]
fn assert_refused(reply: RawReply, status: u16, message: &str, what: &str) {
    let response = match reply {
        RawReply::Response(response) => response,
        other => panic!("{what}: expected a {status}, got {other:?}"),
    };
    assert_eq!(
        response.status,
        status,
        "{what}\n{}{}",
        response.head,
        response.text()
    );
    // No `Accept`: Kong's error_default_type, text/plain.
    assert_eq!(response.plain_message(), message, "{what}");
}

// ----- 1. identity headers --------------------------------------------------------------

/// Headers the gateway or its auth plugins set upstream, as prefixes.
const GATEWAY_SET: [&str; 6] = [
    "x-consumer-",
    "x-credential-",
    "x-anonymous-",
    "x-authenticated-",
    "x-forwarded-",
    "x-real-ip",
];

/// No header the upstream got is an underscore alias of a gateway-set
/// one, and no forged value arrived.
#[track_caller]
fn assert_no_identity_aliases(request: &RecordedRequest) {
    for name in request.header_names() {
        let read_as = name.replace('_', "-");
        let gateway_set = GATEWAY_SET.iter().any(|prefix| read_as.starts_with(prefix));
        assert!(
            !(gateway_set && name.contains('_')),
            "the alias {name} reached the upstream:\n{}",
            request.head
        );
    }
    assert!(!request.head.contains("forged"), "{}", request.head);
}

#[test]
fn clients_can_neither_remove_nor_shadow_the_identity_headers() {
    let setup = Setup::start();
    let upstream = RawUpstream::start(Reply::Bytes(OK.to_vec()));
    setup.service_and_route("svc", &upstream, json!({}), json!({"paths": ["/"]}));
    let anonymous = setup.create("/consumers", json!({"username": "anonymous"}));
    let alex = setup.create("/consumers", json!({"username": "alex"}));
    let credential = setup.create("/consumers/alex/key-auth", json!({"key": "alex-key"}));
    setup.create(
        "/services/svc/plugins",
        json!({"name": "key-auth", "config": {"anonymous": anonymous["id"]}}),
    );
    let spoofing = "Connection: keep-alive, X-Anonymous-Consumer, X-Consumer-ID, \
                    X-Consumer-Username, X-Consumer-Custom-ID, X-Credential-Identifier\r\n\
                    Connection: X-Forwarded-For, X-Real-IP, X-Forwarded-Host, X-Forwarded-Proto\r\n\
                    X_Consumer_ID: forged\r\nX_Consumer_Username: forged\r\n\
                    x-consumer_custom_id: forged\r\nX_Credential_Identifier: forged\r\n\
                    X_Anonymous_Consumer: forged\r\nX_Authenticated_Groups: forged\r\n\
                    X_Forwarded_For: forged\r\nX_Real_IP: forged\r\nX_Forwarded_Host: forged\r\n\
                    X-Private: gone\r\nConnection: X-Private\r\napi_key: kept\r\n";

    // Authenticated.
    let request = format!("GET /a HTTP/1.1\r\nHost: a.test\r\napikey: alex-key\r\n{spoofing}\r\n");
    setup.exchange(request.as_bytes()).expect(200);
    // Anonymous.
    let request = format!("GET /b HTTP/1.1\r\nHost: a.test\r\n{spoofing}\r\n");
    setup.exchange(request.as_bytes()).expect(200);

    upstream.wait_for_requests(2);
    let (authenticated, anon) = (&upstream.request_for("/a"), &upstream.request_for("/b"));
    for request in [authenticated, anon] {
        assert_no_identity_aliases(request);
        assert_eq!(
            request.header("x-real-ip"),
            Some("127.0.0.1"),
            "{}",
            request.head
        );
        assert_eq!(
            request.header("x-forwarded-for"),
            Some("127.0.0.1"),
            "{}",
            request.head
        );
        assert_eq!(
            request.header("x-forwarded-host"),
            Some("a.test"),
            "{}",
            request.head
        );
        assert_eq!(
            request.header("x-forwarded-proto"),
            Some("http"),
            "{}",
            request.head
        );
        assert_eq!(
            request.header("x-private"),
            None,
            "RFC 9110 7.6.1\n{}",
            request.head
        );
        assert!(
            matches!(request.header("connection"), None | Some("keep-alive")),
            "{}",
            request.head
        );
        assert_eq!(
            request.header("api_key"),
            Some("kept"),
            "other underscores pass"
        );
    }
    let alex_id = alex["id"].as_str().unwrap();
    assert_eq!(authenticated.header("x-consumer-id"), Some(alex_id));
    assert_eq!(authenticated.header("x-consumer-username"), Some("alex"));
    assert_eq!(
        authenticated.header("x-credential-identifier"),
        credential["id"].as_str()
    );
    assert_eq!(authenticated.header("x-anonymous-consumer"), None);
    assert_eq!(anon.header("x-consumer-id"), anonymous["id"].as_str());
    assert_eq!(anon.header("x-consumer-username"), Some("anonymous"));
    assert_eq!(anon.header("x-anonymous-consumer"), Some("true"));
    assert_eq!(anon.header("x-credential-identifier"), None);
}

// ----- 2. Content-Length ----------------------------------------------------------------

#[test]
fn content_length_lists_and_repeats_are_refused_and_nothing_is_forwarded() {
    let setup = Setup::start();
    let upstream = upstream_on_root(&setup);
    // The report's smuggling: the body hides a request for a path the
    // gateway would refuse.
    let smuggled = "GET /admin HTTP/1.1\r\nHost: a\r\n\r\n";
    let cases = [
        format!("POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: {0}, {0}\r\n\r\n{smuggled}", smuggled.len()),
        format!("POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: {0},{0}\r\n\r\n{smuggled}", smuggled.len()),
        format!("POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: {0}\r\nContent-Length: {0}\r\n\r\n{smuggled}", smuggled.len()),
        format!("POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: +{}\r\n\r\n{smuggled}", smuggled.len()),
        format!("POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 0{}\r\nContent-Length: 1\r\n\r\n{smuggled}", smuggled.len()),
    ];
    for request in &cases {
        let mut client = RawClient::connect(setup.proxy());
        client.send(request.as_bytes());
        client.send(b"GET /victim HTTP/1.1\r\nHost: a\r\n\r\n");
        assert_refused(client.read_reply(RAW_TIMEOUT), 400, "Bad request", request);
        assert!(
            client.closed_within(RAW_TIMEOUT),
            "{request}: the connection must close"
        );
    }
    assert_nothing_forwarded(&upstream, "a request with a Content-Length list");
    // A well-framed request still goes through, alone.
    setup
        .exchange(b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc")
        .expect(200);
    let requests = upstream.wait_for_requests(1);
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].header("content-length"), Some("3"));
    assert_eq!(requests[0].body, b"abc");
}

#[test]
fn an_upstream_content_length_list_reaches_the_client_as_one_value() {
    let setup = Setup::start();
    let mut upstreams = Vec::new();
    for (name, answer) in [
        (
            "list",
            &b"HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\nhello"[..],
        ),
        (
            "repeated",
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
        ),
    ] {
        let upstream = RawUpstream::start(Reply::Bytes(answer.to_vec()));
        setup.service_and_route(
            name,
            &upstream,
            json!({}),
            json!({"paths": [format!("/{name}")]}),
        );
        let request = format!("GET /{name} HTTP/1.1\r\nHost: a\r\n\r\n");
        let response = setup.exchange(request.as_bytes()).expect(200);
        assert_eq!(
            response.header_values("content-length"),
            ["5"],
            "{}",
            response.head
        );
        assert_eq!(response.body, b"hello");
        upstreams.push(upstream);
    }
    // Over HTTP/2 too (hyper checks the length against the DATA).
    let h2 = h2c_client();
    for name in ["list", "repeated"] {
        let response = h2
            .get(format!("http://{}/{name}", setup.proxy()))
            .send()
            .unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(
            response.headers().get_all("content-length").iter().count(),
            1
        );
        assert_eq!(response.text().unwrap(), "hello");
    }
}

// ----- 3. timeouts ----------------------------------------------------------------------

#[test]
fn a_request_body_that_stalls_gets_408_and_its_upstream_connection_is_closed() {
    let setup = Setup::start_with(&["--client-body-timeout", "1"]);
    let upstream = RawUpstream::start(Reply::Bytes(OK.to_vec()));
    setup.service_and_route("svc", &upstream, json!({}), json!({"paths": ["/"]}));
    let stalls: [&[u8]; 2] = [
        b"POST /length HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n0123456789",
        b"POST /chunked HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
    ];
    for (index, stall) in stalls.iter().enumerate() {
        let mut client = RawClient::connect(setup.proxy());
        let started = Instant::now();
        client.send(stall);
        let response = client.read_reply(RAW_TIMEOUT).expect(408);
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(900) && took < Duration::from_secs(5),
            "the 408 must come after the 1 s client body timeout: {took:?}"
        );
        assert_eq!(response.plain_message(), "Request timeout");
        assert_eq!(response.header("connection"), Some("close"));
        assert!(client.closed_within(RAW_TIMEOUT));
        // The upstream got the head and the bytes sent, then its
        // connection was closed: never pooled for another request.
        let recorded = upstream.wait_for(RAW_TIMEOUT, |connections| {
            connections
                .get(index)
                .is_some_and(|connection| connection.closed)
        });
        assert!(recorded[index].closed, "{:?}", recorded[index].text());
        assert!(recorded[index].requests.is_empty(), "an incomplete request");
    }
    let (first_text, second_text) = {
        let recorded = upstream.recorded();
        (recorded[0].text(), recorded[1].text())
    };
    assert!(first_text.ends_with("\r\n\r\n0123456789"), "{first_text}");
    assert!(
        second_text.ends_with("\r\n\r\n5\r\nhello\r\n"),
        "{second_text}"
    );
    setup
        .exchange(b"GET /next HTTP/1.1\r\nHost: a\r\n\r\n")
        .expect(200);
    let recorded = upstream.wait_for(RAW_TIMEOUT, |connections| connections.len() >= 3);
    assert_eq!(recorded.len(), 3, "a new connection for the next request");
    assert_eq!(recorded[2].requests[0].request_line(), "GET /next HTTP/1.1");
}

#[test]
fn a_client_that_reads_nothing_is_cut_off_after_the_send_timeout() {
    let setup = Setup::start_with(&["--send-timeout", "1"]);
    let upstream = RawUpstream::start(Reply::Endless);
    setup.service_and_route("svc", &upstream, json!({}), json!({"paths": ["/"]}));
    let client = RawClient::connect(setup.proxy());
    client
        .stream()
        .try_clone()
        .unwrap()
        .write_all(b"GET /endless HTTP/1.1\r\nHost: a\r\n\r\n")
        .unwrap();
    // The client never reads: once the socket buffers are full, the
    // gateway's write blocks; a second later it gives up, and the upstream
    // body (and its connection) goes with it.
    let recorded = upstream.wait_for(Duration::from_secs(30), |connections| {
        connections
            .first()
            .is_some_and(|connection| connection.closed)
    });
    assert!(
        recorded.first().is_some_and(|connection| connection.closed),
        "the upstream connection must be closed once the client is cut off"
    );
    drop(client);
    // Still serving.
    let other = RawUpstream::start(Reply::Bytes(OK.to_vec()));
    setup.service_and_route("other", &other, json!({}), json!({"paths": ["/other"]}));
    setup
        .exchange(b"GET /other HTTP/1.1\r\nHost: a\r\n\r\n")
        .expect(200);
}

#[test]
fn an_upstream_that_reads_nothing_gets_504_after_the_write_timeout() {
    let setup = Setup::start();
    let upstream = RawUpstream::start(Reply::StopReadingFor(Duration::from_secs(4)));
    setup.service_and_route(
        "svc",
        &upstream,
        json!({"write_timeout": 500, "read_timeout": 60000, "retries": 0}),
        json!({"paths": ["/"]}),
    );
    let body_len: usize = 64 * 1024 * 1024;
    let mut client = RawClient::connect(setup.proxy());
    let head = format!("POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: {body_len}\r\n\r\n");
    client.send(head.as_bytes());
    let mut writer = client.stream().try_clone().unwrap();
    let started = Instant::now();
    let writing = thread::spawn(move || {
        let chunk = vec![b'u'; 1024 * 1024];
        for _ in 0..64 {
            if writer.write_all(&chunk).is_err() {
                return;
            }
        }
    });
    let response = client.read_reply(RAW_TIMEOUT).expect(504);
    let took = started.elapsed();
    assert_eq!(
        response.plain_message(),
        "The upstream server is timing out"
    );
    assert!(
        took < Duration::from_secs(4),
        "the 504 must come from the 500 ms write timeout, before the upstream reads again: {took:?}"
    );
    let recorded = upstream.wait_for(Duration::from_secs(20), |connections| {
        connections
            .first()
            .is_some_and(|connection| connection.closed)
    });
    let connection = recorded.first().expect("one upstream connection");
    assert!(connection.closed, "the upstream connection must be closed");
    assert!(connection.bytes.len() < body_len, "the body was cut short");
    drop(client);
    let _ = writing.join();
}

// ----- 4. Host --------------------------------------------------------------------------

#[test]
fn hosts_that_are_not_host_and_port_get_400_and_nothing_is_forwarded() {
    let setup = Setup::start();
    let upstream = RawUpstream::start(Reply::Bytes(OK.to_vec()));
    setup.service_and_route(
        "wild",
        &upstream,
        json!({}),
        json!({"hosts": ["*.w.example"]}),
    );
    for host in [
        "evil.test/x.w.example",
        "evil.test\\x.w.example",
        "evil.test x.w.example",
        "evil@x.w.example",
        "x..w.example",
        "evil.test?x.w.example",
        "evil.test#x.w.example",
        "x.w.example:80x",
        "x.w.example:80:80",
        "[::1",
        "",
        "x.w.example%",
    ] {
        let request = format!("GET / HTTP/1.1\r\nHost: {host}\r\n\r\n");
        let mut client = RawClient::connect(setup.proxy());
        client.send(request.as_bytes());
        assert_refused(client.read_reply(RAW_TIMEOUT), 400, "Bad request", host);
        assert!(
            client.closed_within(RAW_TIMEOUT),
            "{host}: the connection must close"
        );
    }
    // The same through an absolute-form target.
    let reply =
        setup.exchange(b"GET http://evil@x.w.example/ HTTP/1.1\r\nHost: x.w.example\r\n\r\n");
    assert_refused(reply, 400, "Bad request", "userinfo in the target");
    assert_nothing_forwarded(&upstream, "an invalid Host");
    setup
        .exchange(b"GET / HTTP/1.1\r\nHost: A.W.example:8000\r\n\r\n")
        .expect(200);
    let requests = upstream.wait_for_requests(1);
    assert_eq!(requests[0].header("x-forwarded-host"), Some("a.w.example"));
}

// ----- 5. chunked and Content-Length from the upstream ----------------------------------

#[test]
fn an_upstream_chunked_response_loses_its_content_length() {
    let setup = Setup::start();
    let answer = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
    let upstream = RawUpstream::start(Reply::Bytes(answer.to_vec()));
    setup.service_and_route("svc", &upstream, json!({}), json!({"paths": ["/"]}));
    let mut client = RawClient::connect(setup.proxy());
    client.send(b"GET /one HTTP/1.1\r\nHost: a\r\n\r\n");
    let response = client.read_reply(RAW_TIMEOUT).expect(200);
    assert!(
        response.header("content-length").is_none(),
        "{}",
        response.head
    );
    assert_eq!(response.text(), "hello world");
    // The connection is in sync for the next request.
    client.send(b"GET /two HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(
        client.read_reply(RAW_TIMEOUT).expect(200).text(),
        "hello world"
    );
    let h2 = h2c_client()
        .get(format!("http://{}/h2", setup.proxy()))
        .send()
        .unwrap();
    assert!(h2.headers().get("content-length").is_none());
    assert_eq!(h2.text().unwrap(), "hello world");
}

// ----- 6. absolute-form targets and :authority ------------------------------------------

#[test]
fn an_absolute_form_authority_wins_over_host() {
    let setup = Setup::start();
    let a = RawUpstream::start(Reply::Bytes(OK.to_vec()));
    let b = RawUpstream::start(Reply::Bytes(OK.to_vec()));
    setup.service_and_route("a", &a, json!({}), json!({"hosts": ["a.example"]}));
    setup.service_and_route(
        "b",
        &b,
        json!({}),
        json!({"hosts": ["b.example"], "preserve_host": true}),
    );
    setup
        .exchange(b"GET http://b.example/abs?q=1 HTTP/1.1\r\nHost: a.example\r\n\r\n")
        .expect(200);
    setup
        .exchange(b"GET http://B.example:8080/port HTTP/1.1\r\nHost: a.example\r\n\r\n")
        .expect(200);
    b.wait_for_requests(2);
    let abs = b.request_for("/abs?q=1");
    assert_eq!(abs.request_line(), "GET /abs?q=1 HTTP/1.1");
    assert_eq!(abs.header("host"), Some("b.example"), "preserve_host");
    assert_eq!(abs.header("x-forwarded-host"), Some("b.example"));
    let port = b.request_for("/port");
    assert_eq!(port.header("host"), Some("B.example:8080"));
    assert_nothing_forwarded(&a, "absolute-form targets for b.example");
}

#[test]
fn an_http2_authority_that_differs_from_host_gets_400() {
    let setup = Setup::start();
    let upstream = upstream_on_root(&setup);
    let url = format!("http://{}/h2", setup.proxy());
    let h2 = h2c_client();
    let response = h2.get(&url).header("host", "b.example").send().unwrap();
    assert_eq!(response.version(), reqwest::Version::HTTP_2);
    assert_eq!(response.status(), 400);
    assert_nothing_forwarded(&upstream, "an :authority other than host");
    let same = h2
        .get(&url)
        .header("host", setup.proxy().to_string())
        .send()
        .unwrap();
    assert_eq!(same.status(), 200);
    upstream.wait_for_requests(1);
}

// ----- 7. Proxy -------------------------------------------------------------------------

#[test]
fn the_proxy_header_is_never_forwarded() {
    let setup = Setup::start();
    let upstream = upstream_on_root(&setup);
    setup
        .exchange(
            b"GET /a HTTP/1.1\r\nHost: a\r\nProxy: http://evil.test:8080\r\nX-Kept: 1\r\n\r\n",
        )
        .expect(200);
    setup
        .exchange(b"GET /b HTTP/1.1\r\nHost: a\r\nproxy: http://evil.test:8080\r\nPROXY: x\r\n\r\n")
        .expect(200);
    for request in upstream.wait_for_requests(2) {
        assert!(
            request.header_values("proxy").is_empty(),
            "{}",
            request.head
        );
        assert!(!request.head.contains("evil.test"), "{}", request.head);
    }
}

// ----- 8. HTTP/2 cookies ----------------------------------------------------------------

#[test]
fn http2_cookie_fields_reach_the_upstream_as_one_cookie() {
    let setup = Setup::start();
    let upstream = upstream_on_root(&setup);
    let response = h2c_client()
        .get(format!("http://{}/cookies", setup.proxy()))
        .header("cookie", "a=1")
        .header("cookie", "b=2")
        .header("cookie", "c=3; d=4")
        .send()
        .unwrap();
    assert_eq!(response.version(), reqwest::Version::HTTP_2);
    assert_eq!(response.status(), 200);
    let requests = upstream.wait_for_requests(1);
    assert_eq!(
        requests[0].header_values("cookie"),
        ["a=1; b=2; c=3; d=4"],
        "{}",
        requests[0].head
    );
}

// ----- 9. transfer codings --------------------------------------------------------------

#[test]
fn transfer_codings_other_than_chunked_get_501_and_nothing_is_forwarded() {
    let setup = Setup::start();
    let upstream = upstream_on_root(&setup);
    let gzipped = b"\x1f\x8b\x08\x00\x00\x00\x00\x00";
    for coding in [
        "gzip, chunked",
        "chunked, chunked",
        "gzip",
        "identity",
        "chunked;x=1",
        "deflate,chunked",
    ] {
        let mut request =
            format!("POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: {coding}\r\n\r\n8\r\n")
                .into_bytes();
        request.extend_from_slice(gzipped);
        request.extend_from_slice(b"\r\n0\r\n\r\n");
        let mut client = RawClient::connect(setup.proxy());
        client.send(&request);
        assert_refused(
            client.read_reply(RAW_TIMEOUT),
            501,
            "Not implemented",
            coding,
        );
        assert!(
            client.closed_within(RAW_TIMEOUT),
            "{coding}: the connection must close"
        );
    }
    let repeated = setup.exchange(
        b"POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    );
    assert_refused(repeated, 400, "Bad request", "two Transfer-Encoding fields");
    assert_nothing_forwarded(&upstream, "an unknown transfer coding");
    setup
        .exchange(b"POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n")
        .expect(200);
    assert_eq!(upstream.wait_for_requests(1)[0].body, b"abc");
}

// ----- Kong's details -------------------------------------------------------------------

#[test]
fn trace_gets_405_and_nothing_is_forwarded() {
    let setup = Setup::start();
    let upstream = upstream_on_root(&setup);
    let mut client = RawClient::connect(setup.proxy());
    client.send(b"TRACE / HTTP/1.1\r\nHost: a\r\n\r\n");
    let response = client.read_reply(RAW_TIMEOUT).expect(405);
    assert_eq!(response.plain_message(), "Method not allowed");
    // The connection stays usable, as nginx's does after a 405.
    client.send(b"GET /after HTTP/1.1\r\nHost: a\r\n\r\n");
    client.read_reply(RAW_TIMEOUT).expect(200);
    let requests = upstream.wait_for_requests(1);
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].request_line(), "GET /after HTTP/1.1");
}

#[test]
fn te_trailers_is_forwarded_and_the_trailer_header_kept_only_then() {
    let setup = Setup::start();
    let answer = b"HTTP/1.1 200 OK\r\nTrailer: X-Checksum\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\nX-Checksum: 1\r\n\r\n";
    let upstream = RawUpstream::start(Reply::Bytes(answer.to_vec()));
    setup.service_and_route("svc", &upstream, json!({}), json!({"paths": ["/"]}));
    let with = setup
        .exchange(b"GET /with HTTP/1.1\r\nHost: a\r\nTE: trailers\r\nConnection: TE\r\n\r\n")
        .expect(200);
    assert_eq!(with.header("trailer"), Some("X-Checksum"), "{}", with.head);
    let without = setup
        .exchange(b"GET /without HTTP/1.1\r\nHost: a\r\nTE: gzip\r\n\r\n")
        .expect(200);
    assert_eq!(without.header("trailer"), None, "{}", without.head);
    upstream.wait_for_requests(2);
    let with = upstream.request_for("/with");
    assert_eq!(with.header_values("te"), ["trailers"], "{}", with.head);
    let without = upstream.request_for("/without");
    assert!(without.header_values("te").is_empty(), "{}", without.head);
}

#[test]
fn a_header_line_over_8_kib_gets_400_and_150_headers_are_proxied() {
    let setup = Setup::start();
    let upstream = upstream_on_root(&setup);
    for (name, value_len) in [("Cookie", 9000), ("X-Long", 8183), ("X-Huge", 40 * 1024)] {
        let request = format!(
            "GET / HTTP/1.1\r\nHost: a\r\n{name}: {}\r\n\r\n",
            "v".repeat(value_len)
        );
        let reply = setup.exchange(request.as_bytes());
        assert_refused(reply, 400, "Request header or cookie too large", name);
    }
    assert_nothing_forwarded(&upstream, "a header line over 8 KiB");
    let mut many = String::from("GET /many HTTP/1.1\r\nHost: a\r\n");
    for n in 0..150 {
        many.push_str(&format!("X-Many-{n}: value-{n}\r\n"));
    }
    many.push_str(&format!("X-Just-Fits: {}\r\n\r\n", "v".repeat(8182 - 5)));
    setup.exchange(many.as_bytes()).expect(200);
    let request = &upstream.wait_for_requests(1)[0];
    for n in 0..150 {
        let value = format!("value-{n}");
        assert_eq!(request.header(&format!("x-many-{n}")), Some(value.as_str()));
    }
    assert_eq!(request.header("x-just-fits").map(str::len), Some(8182 - 5));
}

#[test]
fn an_empty_query_reaches_the_upstream_as_sent() {
    let setup = Setup::start();
    let upstream = upstream_on_root(&setup);
    let stripped = RawUpstream::start(Reply::Bytes(OK.to_vec()));
    setup.service_and_route(
        "stripped",
        &stripped,
        json!({"path": "/svc"}),
        json!({"paths": ["/strip"], "strip_path": true}),
    );
    setup
        .exchange(b"GET /request? HTTP/1.1\r\nHost: a\r\n\r\n")
        .expect(200);
    setup
        .exchange(b"GET /request?a=1&&b HTTP/1.1\r\nHost: a\r\n\r\n")
        .expect(200);
    setup
        .exchange(b"GET /?? HTTP/1.1\r\nHost: a\r\n\r\n")
        .expect(200);
    let h2 = h2c_client()
        .get(format!("http://{}/h2?", setup.proxy()))
        .send()
        .unwrap();
    assert_eq!(h2.status(), 200);
    upstream.wait_for_requests(4);
    for target in ["/request?", "/request?a=1&&b", "/??", "/h2?"] {
        assert_eq!(
            upstream.request_for(target).request_line(),
            format!("GET {target} HTTP/1.1")
        );
    }
    setup
        .exchange(b"GET /strip/x? HTTP/1.1\r\nHost: a\r\n\r\n")
        .expect(200);
    setup
        .exchange(b"GET /strip? HTTP/1.1\r\nHost: a\r\n\r\n")
        .expect(200);
    stripped.wait_for_requests(2);
    stripped.request_for("/svc/x?");
    stripped.request_for("/svc?");
}

#[test]
fn a_502_carries_the_upstream_and_proxy_latencies() {
    let setup = Setup::start();
    let closed_port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    setup.create(
        "/services",
        json!({"name": "dead", "url": format!("http://127.0.0.1:{closed_port}"), "retries": 1}),
    );
    setup.create("/services/dead/routes", json!({"paths": ["/dead"]}));
    let response = setup
        .exchange(b"GET /dead HTTP/1.1\r\nHost: a\r\n\r\n")
        .expect(502);
    assert_eq!(
        response.plain_message(),
        "An invalid response was received from the upstream server"
    );
    for latency in ["x-kong-upstream-latency", "x-kong-proxy-latency"] {
        assert!(
            response
                .header(latency)
                .is_some_and(|value| value.parse::<u64>().is_ok()),
            "{latency}\n{}",
            response.head
        );
    }
    assert_eq!(
        response.header("x-kong-response-latency"),
        None,
        "{}",
        response.head
    );
    assert_eq!(response.header("via"), Some("1.1 kong/3.10.0"));
    assert!(response
        .header("server")
        .is_some_and(|server| server.starts_with("kong/")));
}

/// A client speaking HTTP/2 without TLS (prior knowledge), as the proxy
/// accepts on its plain listener.
fn h2c_client() -> Client {
    Client::builder()
        .http2_prior_knowledge()
        .no_proxy()
        .timeout(RAW_TIMEOUT)
        .build()
        .expect("an HTTP/2 client")
}
