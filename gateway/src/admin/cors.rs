//! The Admin API's CORS answers, as Kong's `api_helpers.cors_filter` and
//! `OPTIONS` handler give them, but only to origins allowed to drive it.
//!
//! - Browsers' origins: Kong answers any `Origin` with
//!   `Access-Control-Allow-Origin` and credentials, so any web page the
//!   operator visits may drive a loopback Admin API. Here an origin is
//!   allowed when it is this listener's own (loopback names) or one of the
//!   `--admin-gui-url` origins (Kong's `admin_gui_url`, e.g. Kong
//!   Manager's); on loopback listeners any other origin is refused (403,
//!   see `mod.rs`), elsewhere it simply gets no CORS answer.
//! - [`headers`]: `Access-Control-Allow-Origin` (the request's allowed
//!   origin; without `--admin-gui-url` and without `Origin`, `*`, as Kong;
//!   with it, the first GUI origin when the request names none, as Kong),
//!   `Access-Control-Allow-Credentials: true`; for `OPTIONS`, also
//!   `Access-Control-Allow-Methods` (the endpoint's methods, sorted like
//!   Kong's `Allow`) and `Access-Control-Allow-Headers` (the request's
//!   `Access-Control-Request-Headers`, else `Content-Type`).

use http::header::{HeaderMap, HeaderValue, ORIGIN};

/// The origin (`scheme://host[:port]`) of a URL given to
/// `--admin-gui-url`; `None` when it has no scheme or host.
pub fn origin_of(url: &str) -> Option<String> {
    let (scheme, rest) = url.trim().split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if scheme.is_empty() || authority.is_empty() {
        return None;
    }
    Some(format!(
        "{}://{}",
        scheme.to_ascii_lowercase(),
        authority.to_ascii_lowercase()
    ))
}

/// What the CORS answer needs to know about the request.
pub struct Request<'a> {
    pub headers: &'a HeaderMap,
    /// The request's `Origin` is this listener's own.
    pub own_origin: bool,
    /// An `OPTIONS` request, answered with these methods.
    pub preflight: Option<&'static str>,
}

/// The CORS headers of the answer to `request` (see the module doc).
pub fn headers(gui_origins: &[String], request: &Request<'_>) -> Vec<(&'static str, HeaderValue)> {
    let origin = request
        .headers
        .get(ORIGIN)
        .and_then(|value| value.to_str().ok());
    let allowed_origin = match origin {
        Some(origin)
            if gui_origins
                .iter()
                .any(|gui| gui.eq_ignore_ascii_case(origin)) =>
        {
            Some(origin.to_owned())
        }
        Some(origin) if request.own_origin => Some(origin.to_owned()),
        Some(_) => None,
        None => Some(gui_origins.first().map_or("*", String::as_str).to_owned()),
    };
    let mut headers = Vec::new();
    let Some(allowed_origin) = allowed_origin.and_then(|text| HeaderValue::from_str(&text).ok())
    else {
        return headers;
    };
    headers.push(("access-control-allow-origin", allowed_origin));
    headers.push((
        "access-control-allow-credentials",
        HeaderValue::from_static("true"),
    ));
    if let Some(methods) = request.preflight {
        headers.push((
            "access-control-allow-methods",
            HeaderValue::from_static(methods),
        ));
        let asked = request
            .headers
            .get("access-control-request-headers")
            .cloned()
            .unwrap_or_else(|| HeaderValue::from_static("Content-Type"));
        headers.push(("access-control-allow-headers", asked));
    }
    headers
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gui_urls_give_their_origin() {
        assert_eq!(
            origin_of("http://admin.api:9100/path/to/any/way").as_deref(),
            Some("http://admin.api:9100")
        );
        assert_eq!(
            origin_of("HTTPS://Manager.Example").as_deref(),
            Some("https://manager.example")
        );
        assert_eq!(origin_of("admin.api:9100"), None);
    }

    fn answer(gui: &[&str], origin: Option<&str>, own: bool) -> Option<String> {
        let gui: Vec<String> = gui.iter().map(|url| (*url).to_owned()).collect();
        let mut map = HeaderMap::new();
        if let Some(origin) = origin {
            map.insert(ORIGIN, HeaderValue::from_str(origin).unwrap());
        }
        let request = Request {
            headers: &map,
            own_origin: own,
            preflight: None,
        };
        headers(&gui, &request)
            .into_iter()
            .find(|(name, _)| *name == "access-control-allow-origin")
            .map(|(_, value)| value.to_str().unwrap().to_owned())
    }

    #[test]
    fn only_allowed_origins_are_echoed() {
        assert_eq!(answer(&[], None, false).as_deref(), Some("*"));
        assert_eq!(
            answer(&[], Some("http://127.0.0.1:8001"), true).as_deref(),
            Some("http://127.0.0.1:8001")
        );
        assert_eq!(answer(&[], Some("http://evil.example"), false), None);
        let gui = ["http://admin.api:9100"];
        assert_eq!(
            answer(&gui, Some("http://admin.api:9100"), false).as_deref(),
            Some("http://admin.api:9100")
        );
        assert_eq!(
            answer(&gui, None, false).as_deref(),
            Some("http://admin.api:9100")
        );
        assert_eq!(answer(&gui, Some("http://evil.example"), false), None);
    }
}
