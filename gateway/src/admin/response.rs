//! Admin API answers: a successful [`Reply`] or an [`ApiError`], both
//! rendered as Kong renders them (JSON bodies, Kong's messages).

use http::StatusCode;
use serde_json::{json, Value};

use crate::store::StoreError;

/// A successful answer: a status and an optional JSON body, or a text
/// body with its content type (`/metrics`).
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub status: StatusCode,
    pub body: Option<Value>,
    pub text: Option<(&'static str, String)>,
}

impl Reply {
    /// 200 with a text body of `content_type`.
    pub fn text(content_type: &'static str, text: String) -> Self {
        Self {
            status: StatusCode::OK,
            body: None,
            text: Some((content_type, text)),
        }
    }

    /// 200 with a JSON body already written.
    pub fn json_text(text: String) -> Self {
        Self::text("application/json; charset=utf-8", text)
    }

    /// 200 with a body.
    pub fn ok(body: Value) -> Self {
        Self {
            status: StatusCode::OK,
            body: Some(body),
            text: None,
        }
    }

    /// 201 with a body.
    pub fn created(body: Value) -> Self {
        Self {
            status: StatusCode::CREATED,
            body: Some(body),
            text: None,
        }
    }

    /// 204 without a body.
    pub fn no_content() -> Self {
        Self {
            status: StatusCode::NO_CONTENT,
            body: None,
            text: None,
        }
    }
}

/// Every way an Admin API request can fail.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A store error, rendered with Kong's code/name/message/fields.
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("not found")]
    NotFound,
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("cannot parse JSON body")]
    BadJson,
    /// 400 with `{"message": ...}`.
    #[error("bad request: {0}")]
    BadRequest(String),
    #[error("unsupported media type")]
    UnsupportedMediaType,
    #[error("request body too large")]
    PayloadTooLarge,
    #[error("missing or wrong Kong-Admin-Token")]
    Unauthorized,
    #[error("unexpected Host header")]
    ForbiddenHost,
    #[error("unexpected Origin header")]
    ForbiddenOrigin,
    #[error("no entity named '{0}'")]
    NoSuchEntity(String),
    #[error("no plugin named '{0}'")]
    NoSuchPlugin(String),
    /// 400 with Kong's code 14 body (`invalid declarative configuration`).
    #[error("invalid declarative configuration")]
    Declarative(Value),
    /// Something broke inside the gateway (never caused by input).
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    /// The HTTP status of the answer.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Store(error) => {
                StatusCode::from_u16(error.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
            }
            Self::NotFound | Self::NoSuchEntity(_) | Self::NoSuchPlugin(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::BadJson | Self::BadRequest(_) | Self::Declarative(_) => StatusCode::BAD_REQUEST,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::ForbiddenHost | Self::ForbiddenOrigin => StatusCode::FORBIDDEN,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The JSON body of the answer.
    pub fn body(&self) -> Value {
        let message = |text: &str| json!({ "message": text });
        match self {
            Self::Store(error) => error.kong_body(),
            Self::NotFound => message("Not found"),
            Self::MethodNotAllowed => message("Method not allowed"),
            Self::BadJson => message("Cannot parse JSON body"),
            Self::BadRequest(text) => message(text),
            Self::UnsupportedMediaType => message("Unsupported Media Type"),
            Self::PayloadTooLarge => message("Request body too large"),
            Self::Unauthorized => message("Unauthorized"),
            Self::ForbiddenHost => message("Forbidden: unexpected Host header"),
            Self::ForbiddenOrigin => message("Forbidden: unexpected Origin header"),
            Self::NoSuchEntity(name) => message(&format!("No entity named '{name}'")),
            Self::NoSuchPlugin(name) => message(&format!("No plugin named '{name}'")),
            Self::Internal(_) => message("An unexpected error occurred"),
            Self::Declarative(body) => body.clone(),
        }
    }

    /// The error as a reply-shaped pair (status, body).
    pub fn into_reply(self) -> Reply {
        Reply {
            status: self.status(),
            body: Some(self.body()),
            text: None,
        }
    }
}
