//! chatctl (placeholder while the client is built).
