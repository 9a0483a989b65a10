//! Sidecar-mode translation tests.
