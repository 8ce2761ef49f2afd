//! The one error shape of the API: `{"error": "<snake_case_code>", "message": "<human text>"}`.
//!
//! Handlers return `Result<_, ApiError>`. Internal failures are answered with a generic message,
//! so SQL, stack traces and secrets never reach a client; their cause goes to the access log
//! (`edge::Edge`), on the line that carries the request's id.

use axum::{
    http::{header, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::Error;

/// Body of every error response.
#[derive(Debug, Serialize, serde::Deserialize, ToSchema)]
pub(super) struct ErrorBody {
    /// Stable, machine-readable code, e.g. `insufficient_stock`.
    #[schema(example = "not_found")]
    pub error: String,
    /// Explanation for a human.
    #[schema(example = "product 42 does not exist")]
    pub message: String,
}

/// Every error code the API answers with, each once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ErrorCode {
    AdminDisabled,
    BadRequest,
    Busy,
    CategoryConflict,
    DuplicateSku,
    HeaderTooLarge,
    HoldConverted,
    HoldExpired,
    InsufficientStock,
    Internal,
    InvalidIdempotencyKey,
    InvalidInput,
    MalformedJson,
    MethodNotAllowed,
    NotFound,
    OverPurchaseLimit,
    PayloadTooLarge,
    RequestTimeout,
    Timeout,
    TooManyRequests,
    Unauthorized,
    Unavailable,
    UnsupportedMediaType,
    UriTooLong,
}

impl ErrorCode {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Self::AdminDisabled => "admin_disabled",
            Self::BadRequest => "bad_request",
            Self::Busy => "busy",
            Self::CategoryConflict => "category_conflict",
            Self::DuplicateSku => "duplicate_sku",
            Self::HeaderTooLarge => "header_too_large",
            Self::HoldConverted => "hold_converted",
            Self::HoldExpired => "hold_expired",
            Self::InsufficientStock => "insufficient_stock",
            Self::Internal => "internal",
            Self::InvalidIdempotencyKey => "invalid_idempotency_key",
            Self::InvalidInput => "invalid_input",
            Self::MalformedJson => "malformed_json",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::NotFound => "not_found",
            Self::OverPurchaseLimit => "over_purchase_limit",
            Self::PayloadTooLarge => "payload_too_large",
            Self::RequestTimeout => "request_timeout",
            Self::Timeout => "timeout",
            Self::TooManyRequests => "too_many_requests",
            Self::Unauthorized => "unauthorized",
            Self::Unavailable => "unavailable",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::UriTooLong => "uri_too_long",
        }
    }
}

/// The cause of an internal error, carried from the handler to the access log in the
/// response's extensions, so that one line holds the cause and the request's id.
#[derive(Clone, Debug)]
pub(super) struct InternalCause(pub String);

/// An error answer: its status, its code and a message for a human.
#[derive(Debug)]
pub(super) struct ApiError {
    status: StatusCode,
    code: ErrorCode,
    message: String,
    /// For an internal or dependency error, its cause: logged with the request's access line,
    /// never sent.
    cause: Option<String>,
}

pub(super) type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub(super) fn new(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            cause: None,
        }
    }

    pub(super) fn bad_request(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub(super) fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, ErrorCode::NotFound, message)
    }

    pub(super) fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized, message)
    }

    /// 422: well-formed JSON whose values are not acceptable.
    pub(super) fn invalid(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::InvalidInput,
            message,
        )
    }

    /// A handler panicked: answered as an internal error, the panic's message kept as its cause.
    pub(super) fn panicked(panic: Box<dyn std::any::Any + Send>) -> Self {
        let message = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic without a message".to_string());
        Self {
            cause: Some(format!("panic: {message}")),
            ..Self::internal()
        }
    }

    pub(super) fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::Internal,
            "internal error; the request id in X-Request-Id helps the operator find it",
        )
    }

    #[cfg(test)]
    pub(super) fn status(&self) -> StatusCode {
        self.status
    }
}

impl From<Error> for ApiError {
    fn from(error: Error) -> Self {
        let message = error.to_string();
        match error {
            Error::NotFound(_) => Self::not_found(message),
            Error::DuplicateSku(_) => {
                Self::new(StatusCode::CONFLICT, ErrorCode::DuplicateSku, message)
            }
            Error::CategoryConflict(_) => {
                Self::new(StatusCode::CONFLICT, ErrorCode::CategoryConflict, message)
            }
            Error::OverPurchaseLimit(_) => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                ErrorCode::OverPurchaseLimit,
                message,
            ),
            Error::InsufficientStock(_) => {
                Self::new(StatusCode::CONFLICT, ErrorCode::InsufficientStock, message)
            }
            Error::Invalid(_) => Self::invalid(message),
            Error::HoldExpired(_) => {
                Self::new(StatusCode::CONFLICT, ErrorCode::HoldExpired, message)
            }
            Error::HoldConverted(_) => {
                Self::new(StatusCode::CONFLICT, ErrorCode::HoldConverted, message)
            }
            Error::Unauthorized(_) => Self::unauthorized(message),
            Error::Busy { cause, .. } => Self {
                cause,
                ..Self::new(StatusCode::SERVICE_UNAVAILABLE, ErrorCode::Busy, message)
            },
            Error::Unavailable { cause, .. } => Self {
                cause: Some(cause),
                ..Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    ErrorCode::Unavailable,
                    message,
                )
            },
            Error::Internal(cause) => Self {
                cause: Some(format!("{cause:#}")),
                ..Self::internal()
            },
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: self.code.as_str().to_string(),
            message: self.message,
        };
        let mut response = (self.status, Json(body)).into_response();
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            // Every 503 is worth a retry: tell clients and proxies when.
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        if let Some(cause) = self.cause {
            response.extensions_mut().insert(InternalCause(cause));
        }
        response
    }
}
