//! The generic conformance suite (placeholder, filled in below).
