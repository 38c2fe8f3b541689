//! The HTTP/1.1 request head and body framing of the proxy's server, on
//! hostile bytes: `gateway::proxy::fuzzing::http1_connection` parses the
//! heads (httparse, then the framing and keep-alive rules), runs the
//! request checks (`TRACE`, `Host`, absolute-form) and the client header
//! preparation (hop-by-hop fields, `Proxy`, identity aliases), and decodes
//! each body by its framing, pipelined requests one after the other.
//!
//! The first byte says where the rest is cut into two reads. Checked:
//! - nothing panics;
//! - the events do not depend on the cut (incremental parsing agrees with
//!   parsing everything at once);
//! - every request that passes has one unambiguous framing: at most one
//!   `Content-Length`, plain digits equal to the framed length, none next
//!   to chunked; a complete `Content-Length` body has exactly that length;
//! - none of the fields the client sent for the proxy alone survives
//!   (`Connection` and the hop-by-hop fields, `Proxy`, `TE` other than
//!   `trailers`), nor an underscore alias of a gateway-set header;
//! - at most one `Host`, and it is `host[:port]`.

#![no_main]

use gateway::proxy::fuzzing::{http1_connection, Event, Framing};
use gateway::proxy::request_checks::is_valid_host;
use libfuzzer_sys::fuzz_target;

/// Fields that must never be left for the plugins and the upstream.
const REMOVED: [&str; 7] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "proxy",
];

/// What gateway-set headers start with (read with `_` as `-`).
const GATEWAY_SET: [&str; 6] = [
    "x-consumer-",
    "x-credential-",
    "x-anonymous-",
    "x-authenticated-",
    "x-forwarded-",
    "x-real-ip",
];

fuzz_target!(|data: &[u8]| {
    let Some((&cut, input)) = data.split_first() else {
        return;
    };
    let split = usize::from(cut) * input.len() / 255;
    let whole = http1_connection(input, input.len());
    let in_two = http1_connection(input, split);
    assert_eq!(
        whole, in_two,
        "the events depend on where the input was cut ({split})"
    );
    let mut framed = None;
    for (index, event) in whole.iter().enumerate() {
        match event {
            Event::Head {
                headers, framing, ..
            } => {
                check_head(headers, *framing);
                framed = Some(*framing);
            }
            Event::Body(body) => {
                let complete = whole.get(index + 1) != Some(&Event::Incomplete);
                if let (true, Some(Framing::Length(length))) = (complete, framed) {
                    assert_eq!(
                        body.len() as u64,
                        length,
                        "a complete body of another length"
                    );
                }
            }
            Event::Refused(_) => framed = None,
            Event::BodyError | Event::Incomplete => {}
        }
    }
});

/// The invariants of a request that passed.
fn check_head(headers: &[(String, Vec<u8>)], framing: Framing) {
    let values = |wanted: &str| -> Vec<&[u8]> {
        headers
            .iter()
            .filter(|(name, _)| name == wanted)
            .map(|(_, value)| value.as_slice())
            .collect()
    };
    let lengths = values("content-length");
    assert!(lengths.len() <= 1, "several Content-Length fields");
    match framing {
        Framing::Chunked => assert!(lengths.is_empty(), "Content-Length next to chunked"),
        Framing::Length(length) => {
            let value = lengths.first().expect("a Content-Length").trim_ascii();
            assert!(
                value.iter().all(u8::is_ascii_digit),
                "a Content-Length that is not digits"
            );
            let parsed: u64 = std::str::from_utf8(value).unwrap().parse().unwrap();
            assert_eq!(parsed, length);
        }
        Framing::Empty => {
            if let Some(value) = lengths.first() {
                assert!(value.trim_ascii().iter().all(|&byte| byte == b'0'));
            }
        }
    }
    for (name, value) in headers {
        assert!(!REMOVED.contains(&name.as_str()), "{name} was left");
        if name == "te" {
            assert_eq!(value, b"trailers", "TE other than trailers was left");
        }
        let read_as = name.replace('_', "-");
        let alias = name.contains('_') && GATEWAY_SET.iter().any(|set| read_as.starts_with(set));
        assert!(!alias, "the identity alias {name} was left");
    }
    let hosts = values("host");
    assert!(hosts.len() <= 1, "several Host fields");
    if let Some(host) = hosts.first() {
        assert!(is_valid_host(host), "an invalid Host passed: {host:?}");
    }
}
