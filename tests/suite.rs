//! End-to-end tests of `sluice check`, `sweep`, `capacity`, `merge` and `schema`.
