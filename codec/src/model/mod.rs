//! Model import and the project's own layer graph.
pub mod reference;
