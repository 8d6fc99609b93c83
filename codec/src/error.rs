//! Typed errors of the codec. Every message names the file, field or layer it is
//! about and what was expected, so that binaries can print it as one line.
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {msg}")]
    File { path: PathBuf, msg: String },
    #[error("model {path}: {msg}")]
    Model { path: PathBuf, msg: String },
    #[error("unsupported op {op} at node '{node}' (supported: {supported})")]
    UnsupportedOp {
        op: String,
        node: String,
        supported: &'static str,
    },
    #[error("invalid scale {0} (expected 2, 3 or 4)")]
    Scale(usize),
    #[error("{0}")]
    Invalid(String),
}

impl Error {
    pub fn file(path: impl Into<PathBuf>, msg: impl Into<String>) -> Self {
        Error::File {
            path: path.into(),
            msg: msg.into(),
        }
    }
    pub fn model(path: impl Into<PathBuf>, msg: impl Into<String>) -> Self {
        Error::Model {
            path: path.into(),
            msg: msg.into(),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
