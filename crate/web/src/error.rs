//! The errors JavaScript sees: an `Error` whose `code` property is one of a documented set,
//! so that a front end can branch on it (see `index.d.ts`, `ShoalErrorCode`).

use wasm_bindgen::JsValue;

/// The `code` of every error the JavaScript API rejects with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorCode {
    /// No block of the chain contains the transaction (or the hinted block does not).
    NotFound,
    /// The node's header chain does not yet reach the block the answer is in.
    NotSynced,
    /// No relay or member could be reached or answered in time.
    Unavailable,
    /// An answer came with a proof that does not verify against the node's own headers.
    InvalidProof,
    /// The caller's input is malformed (txid, options, multiaddr...).
    BadInput,
    /// IndexedDB failed (quota exhausted, unavailable, corrupt data).
    Storage,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::NotFound => "NOT_FOUND",
            ErrorCode::NotSynced => "NOT_SYNCED",
            ErrorCode::Unavailable => "UNAVAILABLE",
            ErrorCode::InvalidProof => "INVALID_PROOF",
            ErrorCode::BadInput => "BAD_INPUT",
            ErrorCode::Storage => "STORAGE",
        }
    }
}

/// An error on its way to JavaScript.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError {
            code,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.message)
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(err: crate::store::StoreError) -> Self {
        ApiError::new(ErrorCode::Storage, err.to_string())
    }
}

impl From<ApiError> for JsValue {
    fn from(err: ApiError) -> JsValue {
        let error = js_sys::Error::new(&err.message);
        error.set_name("ShoalError");
        // Setting a property on a fresh Error object cannot fail.
        let _ = js_sys::Reflect::set(
            &error,
            &JsValue::from_str("code"),
            &JsValue::from_str(err.code.as_str()),
        );
        error.into()
    }
}
