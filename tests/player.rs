//! End-to-end tests of `nawqsr play`.
